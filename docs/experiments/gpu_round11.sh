#!/usr/bin/env bash
# Round 11 on a GPU machine (#31): the device metrics against numpy there, the verdict tests with every
# output's metrics on the device, then benchmark files timed end to end.  Usage:
#   gpu_round11.sh OUTDIR PART   (PART: verify | check (verify, then segdet) | segdet | rest)
set -u
out=${1:?OUTDIR}; part=${2:?PART}
mkdir -p "$out"
if [ "$part" = check ] || [ "$part" = verify ]; then
  PYTEST_TRT_METRICS_DEVICE=cuda timeout -s INT 120 python3 -m pytest tests/test_device_metrics.py -v \
    -p no:cacheprovider > "$out/device_metrics.log" 2>&1
  echo "device_metrics rc=$?" >> "$out/files.txt"
  start=$(date +%s)
  PYTEST_TRT_TEST_DEVICE=cuda PYTEST_TRT_DEVICE_METRICS_MIN=0 timeout -s INT 150 python3 -m pytest \
    tests/test_verdicts.py -v -p no:cacheprovider -k "segmentation or openvino or outside_conftest" \
    > "$out/verdicts_cuda.log" 2>&1
  echo "verdicts_cuda rc=$? wall=$(( $(date +%s) - start ))s" >> "$out/files.txt"
  grep -h -B2 -A8 "^E \|^FAILED" "$out/device_metrics.log" "$out/verdicts_cuda.log" | head -150
fi
run() {  # name, seconds, pytest arguments...
  local name=$1 secs=$2; shift 2
  local start; start=$(date +%s)
  timeout -s INT "$secs" python3 -m pytest "$@" -v -p no:cacheprovider --benchmark-json="$out/$name.json" \
    > "$out/$name.log" 2>&1
  echo "$name rc=$? wall=$(( $(date +%s) - start ))s" >> "$out/files.txt"
}
case $part in
  check|segdet) run segdet "${SECS:-330}" benchmarks/test_segmentation.py benchmarks/test_detection.py ;;
  rest) run rest "${SECS:-560}" benchmarks --ignore=benchmarks/test_segmentation.py \
          --ignore=benchmarks/test_detection.py ;;
esac
