#!/bin/sh
# Installs those of the Debian packages named as arguments that are not
# installed yet (Debian 12, bookworm; as root, or through sudo), and
# stops the services they start where systemd runs: the tests and the
# benchmarks start their own.
set -e
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends $missing
$SUDO sh -c 'command -v systemctl >/dev/null && \
    systemctl disable --now nginx redis-server prometheus \
        >/dev/null 2>&1 || true'
