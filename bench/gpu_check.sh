#!/usr/bin/env bash
# The one prepared GPU check (issue #18): unpack what the GPU image lacks, run `pytest -m gpu`, then
# bench/gpu_check.py (parity, SciFact nDCG@10, throughput against sentence-transformers on the same
# GPU, a bf16 training step, a Ray build where ray is there). Writes OUT_DIR/gpu_check.json and logs.
#
# Here, once:   python bench/gpu_bundle.py pack            (writes .devparts/p00 .. p03, ~62 MiB each)
# Device calls: each of the first parts travels in one call (carry .devparts/pNN) and is copied to
#               /tmp/devparts/; the call that carries the last part runs
#                   bash bench/gpu_check.sh "$OUT"
# On a CPU, to test every step first (no GPU: the gpu tests skip, the benchmark runs small on CPU):
#   PYTHON=.venv/bin/python EMBEDOPS_GPU_QUICK=1 bash bench/gpu_check.sh /tmp/gpucheck-out
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-${OUT:-/tmp/gpucheck-out}}
PARTS=${EMBEDOPS_GPU_PARTS:-/tmp/devparts}
WORK=${EMBEDOPS_GPU_WORK:-/tmp/gpucheck}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
start=$(date +%s)

if [ ! -d "$WORK/payload" ]; then
  "$PY" bench/gpu_bundle.py unpack --parts "$PARTS" --dest "$WORK" || exit 1
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/wheels" "$WORK"/payload/wheels/*.whl \
    || echo "warning: the small wheels did not install" >&2
fi
# The unpacked onnxruntime-gpu is for CPython 3.12 (the GPU image's); another Python keeps its own.
if "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))'; then
  export PYTHONPATH="$WORK/site:$WORK/wheels:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=true
echo "== unpacked in $(( $(date +%s) - start )) s; onnxruntime: $("$PY" -c 'import onnxruntime as o; print(o.__version__, o.get_available_providers())' 2>&1 | tail -1)"
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"

echo "== pytest -m gpu"
EMBEDOPS_PREBUILT_EXPORTS="$WORK/payload/tiny-exports" timeout 120 "$PY" -m pytest -m gpu tests/encoding \
  -q -rA -p no:cacheprovider 2>&1 | tee "$OUT_DIR/pytest-gpu.log" | tail -15

echo "== bench/gpu_check.py"
timeout 420 "$PY" bench/gpu_check.py --payload "$WORK/payload" --out "$OUT_DIR/gpu_check.json" \
  ${EMBEDOPS_GPU_QUICK:+--quick} 2>&1 | tee "$OUT_DIR/gpu_check.log" | grep -v '^  ' | cut -c1-600
echo "== done in $(( $(date +%s) - start )) s"
