#!/usr/bin/env bash
# `make rtx-versions`: the same cases built by every TensorRT-RTX version, each version in its own
# environment (a pip --target directory put first on PYTHONPATH) and its own pytest processes, then
# the versions side by side.  docs/rtx-versions.md holds what it found.
#
#   RTX_VERSIONS  versions to build with (default: the four on PyPI)
#   RTX_ENVS      where the per-version environments go (default .rtx/, reused by later runs)
#   RTX_OUT       result files and the comparison (default results/rtx-versions/)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
VERSIONS=${RTX_VERSIONS:-1.4.0.76 1.5.0.114 1.6.1.120 1.7.1.116}
ENVS=${RTX_ENVS:-.rtx}
OUT=${RTX_OUT:-results/rtx-versions}
mkdir -p "$OUT" "$ENVS"

# A user's graph of two inputs (float features and int64 ids, a dynamic sequence axis), as a user's
# own file would come: through --trt-onnx with trtexec-style shapes.
two_in="$OUT/two_in.onnx"
$PY -c 'import sys, pathlib; from tests.test_user_models import export_two_in; export_two_in(pathlib.Path(sys.argv[1]))' "$two_in"

for v in $VERSIONS; do
  env_dir="$ENVS/$v"
  if [ ! -f "$env_dir/tensorrt_rtx/__init__.py" ]; then
    # installed aside and moved into place, so an interrupted download never passes for an environment
    rm -rf "$env_dir.partial"
    $PY -m pip install -q --no-deps --target "$env_dir.partial" \
      "tensorrt-rtx-cu12==$v" "tensorrt-rtx-cu12-bindings==$v" "tensorrt-rtx-cu12-libs==$v"
    rm -rf "$env_dir" && mv "$env_dir.partial" "$env_dir"
  fi
  got=$(PYTHONPATH="$env_dir" $PY -c 'import tensorrt_rtx; print(tensorrt_rtx.__version__)')
  if [ "$got" != "$v" ]; then
    echo "rtx-versions: $env_dir imports TensorRT-RTX $got, not $v; remove it and run again" >&2
    exit 2
  fi
  echo "== TensorRT-RTX $v"
  # exit 1 is a case the builder refused: a finding to compare, not a reason to stop; 2 and above
  # (interrupted, internal error, usage error) stop the run
  build() {
    local rc=0
    PYTHONPATH="$env_dir" $PY -m pytest -q -p no:cacheprovider --trt-backend=tensorrt_rtx "$@" || rc=$?
    [ "$rc" -le 1 ] || { echo "rtx-versions: pytest stopped with exit $rc on TensorRT-RTX $v" >&2; exit "$rc"; }
  }
  build benchmarks -m smoke --trt-json="$OUT/rtx-$v-smoke.json"
  build benchmarks/test_classification.py benchmarks/test_segmentation.py \
    -k "(resnet18 and b1-) or (lraspp and b1- and 320px)" --trt-json="$OUT/rtx-$v-models.json"
  build --trt-onnx "$two_in" --trt-min-shapes=feats:1x4x8,ids:1x4 --trt-shapes=feats:8x16x8,ids:8x16 \
    --trt-max-shapes=feats:32x64x8,ids:32x64 --trt-precision=fp32,fp16,int8 \
    --trt-json="$OUT/rtx-$v-user.json"
done

$PY -m pytest_trt.cli compare --by tensorrt_rtx_version "$OUT"/rtx-*.json \
  --markdown "$OUT/compare.md" --json "$OUT/compare.json"
