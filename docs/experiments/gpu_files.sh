#!/usr/bin/env bash
# Benchmark files (or -k selections) on a GPU machine, each for a limited time, with a progress line per
# case (-v) and its JSON (every result's wall split), for the default suite's wall time by parts (#31).
# Usage: gpu_files.sh OUTDIR NAME=SECONDS:PYTEST-ARGS ...   e.g.  det=560:benchmarks/test_detection.py
set -u
out=${1:?OUTDIR}; shift
mkdir -p "$out"
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}; secs=${rest%%:*}; args=${rest#*:}
  start=$(date +%s)
  # shellcheck disable=SC2086  # the arguments are words on purpose
  timeout -s INT "$secs" python3 -m pytest $args -v -p no:cacheprovider --benchmark-json="$out/$name.json" \
    > "$out/$name.log" 2>&1
  echo "$name rc=$? wall=$(( $(date +%s) - start ))s args=$args" >> "$out/files.txt"
done
