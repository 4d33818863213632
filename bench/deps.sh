#!/bin/sh
# Installs what the peer benchmark needs besides the test dependencies:
# the OpenResty Lua module of Debian, its Redis client and cjson.
# Debian 12 (bookworm); run as root.
exec sh "$(dirname "$0")/../.ci/install-missing.sh" \
    libnginx-mod-http-lua lua-nginx-redis lua-cjson wrk
