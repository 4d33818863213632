#!/bin/sh
# Installs what building, testing and the demo need, when it is missing.
# Debian 12 (bookworm); run as root.
# openssl: the certificates of the TLS tests (t/lib/DG/TLS.pm);
# dpkg-dev, debhelper: make deb; lintian: its report; prometheus: promtool;
# clang and its runtimes (a recommendation only, hence named): the fuzzers
exec sh "$(dirname "$0")/install-missing.sh" \
    nginx-core nginx-dev libhiredis-dev libjansson-dev libssl-dev \
    redis-server libcmocka-dev wrk gcc make perl openssl \
    dpkg-dev debhelper lintian prometheus clang libclang-rt-14-dev
