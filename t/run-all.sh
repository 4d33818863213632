#!/bin/bash
# Runs every test under prove; its closing summary is the test summary.
cd "$(dirname "$0")/.." || exit 1
exec prove -r -j1 ${PROVE_FLAGS:-} t/
