#!/usr/bin/env bash
# Where the default suite's wall time goes on a GPU machine: each benchmark file of the default suite
# runs for a limited time with a progress line per case (-v), so the cases' splits (engine, quality and
# its parts, timing) are seen even where a file would take hours.  Usage: suite_profile.sh OUTDIR [FILE=SECONDS ...]
set -u
out=${1:?OUTDIR}; shift
mkdir -p "$out"
python3 -m pytest benchmarks --co -q > "$out/collect.txt" 2>&1
grep -c "::" "$out/collect.txt" > "$out/collected_count.txt"
for spec in "$@"; do
  f=${spec%%=*}; secs=${spec#*=}
  start=$(date +%s)
  timeout -s INT "$secs" python3 -m pytest "benchmarks/$f" -v -p no:cacheprovider > "$out/$f.log" 2>&1
  echo "$f rc=$? wall=$(( $(date +%s) - start ))s" >> "$out/files.txt"
done
