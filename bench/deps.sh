#!/bin/sh
# Installs what the peer benchmark needs besides the test dependencies:
# the OpenResty Lua module of Debian, its Redis client and cjson.
# Debian 12 (bookworm); run as root.
set -e
pkgs="libnginx-mod-http-lua lua-nginx-redis lua-cjson wrk"
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
# the package reloads a running nginx service; the benchmark starts its own
$SUDO sh -c 'command -v systemctl >/dev/null && \
    systemctl disable --now nginx >/dev/null 2>&1 || true'
