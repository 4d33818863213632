#!/bin/sh
# Installs what building, testing and the demo need, when it is missing.
# Debian 12 (bookworm); run as root.
set -e
# dpkg-dev, debhelper: make deb; lintian: its report; prometheus: promtool;
# clang and its runtimes (a recommendation only, hence named): the fuzzers
pkgs="nginx-core nginx-dev libhiredis-dev libjansson-dev libssl-dev \
      redis-server libcmocka-dev wrk gcc make perl \
      dpkg-dev debhelper lintian prometheus clang libclang-rt-14-dev"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends $missing
# the packages start services where systemd runs; the tests start their own
$SUDO sh -c 'command -v systemctl >/dev/null && \
    systemctl disable --now nginx redis-server prometheus \
        >/dev/null 2>&1 || true'
