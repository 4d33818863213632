#!/bin/bash
# Runs the cmocka unit test binaries given as arguments; fails if any fails.
rc=0
for b in "$@"; do
    "$b" || rc=1
done
exit $rc
