#!/bin/sh
# Runs one libFuzzer target for a bounded time:
#
#   sh fuzz/run.sh build/fuzz/<target> <seconds>
#
# It starts from the committed seeds (fuzz/corpus/<target>/, read only)
# and a working corpus in build/fuzz/corpus/<target>/ (new inputs go
# there).  A crash, leak, timeout or sanitizer report fails the run and
# leaves the input that caused it in build/fuzz/artifacts/<target>/;
# replay it with `build/fuzz/<target> <that file>`.  The whole output is
# in build/fuzz/<target>.log.
set -u
bin=$1
seconds=$2
name=$(basename "$bin")
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(dirname "$bin")

mkdir -p "$dir/corpus/$name" "$dir/artifacts/$name"

"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/$name/" \
    "$dir/corpus/$name" "$root/fuzz/corpus/$name" \
    > "$dir/$name.log" 2>&1
rc=$?

runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/$name.log")
if [ $rc -ne 0 ]; then
    tail -60 "$dir/$name.log"
    echo "$name: FAILED (exit $rc) after ${runs:-?} runs; reproducer:"
    ls -1t "$dir/artifacts/$name/" | sed "s|^|$dir/artifacts/$name/|"
    exit 1
fi
echo "$name: ${runs:-?} runs in ${seconds} s, no crash"
