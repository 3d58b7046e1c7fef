#!/usr/bin/env bash
# One command for a lent GPU: install the `cuda` extra, run the device test suite on the real GPU
# (not the simulator), benchmark cs_fast on the device (bench/gpu_bench.py: boxes min_median to 1e5,
# tv pairwise, sqfeat with cuBLAS, the pruned center if present, certification overhead beyond the
# model at n = 1e4, m = 1e6 on the digits model), regenerate the performance model next to the
# measurements (bench/gpu_model.py: ptxas -v per kernel and the H100 estimate, to compare with what
# was measured), profile the issue-15 kernels with Nsight Compute where `ncu` is installed, and run the
# CPU suite of `cs-fast bench --quick` on the same host, all under one results folder. Each step has
# its own time limit; the whole fits in ten minutes. Run from the repository root:
#
#   bash bench/gpu_session.sh                 # on the GPU machine
#   bash bench/gpu_session.sh --dry-run       # anywhere: print the plan, check imports, run nothing
#
# Options: --out DIR (default bench/results/gpu-<device>), --no-install, --wheelhouse DIR (install
# offline from downloaded wheels: pip --no-index --find-links DIR), --python PY.
set -u
set -f  # no globbing: the pip extra `.[cuda]` stays literal

DRY=0
INSTALL=1
WHEELS=""
OUT=""
PY="${PYTHON:-python}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --no-install) INSTALL=0 ;;
    --wheelhouse) WHEELS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --python) PY="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "gpu_session.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM  # the real GPU, never the simulator

gpu_name() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1
}
NAME="$(gpu_name)"
SLUG="$(printf '%s' "${NAME:-no-gpu}" | tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9._-]\{1,\}/-/g' -e 's/^-//' -e 's/-$//')"
OUT="${OUT:-bench/results/gpu-${SLUG}}"

if [ -n "$WHEELS" ]; then
  INSTALL_CMD="$PY -m pip install --no-index --find-links $WHEELS -e .[cuda]"
else
  INSTALL_CMD="$PY -m pip install -e .[cuda]"
fi
TEST_CMD="$PY -m pytest -q -p no:cacheprovider tests/cuda_sim tests/test_torch_cuda.py"
GPU_BENCH_CMD="$PY bench/gpu_bench.py --device cuda --out $OUT"
CPU_BENCH_CMD="$PY -m cs_fast_apps.cli bench --quick --no-plots --no-end-to-end --out $OUT/cpu-bench-quick"
MODEL_CMD="$PY bench/gpu_model.py --out $OUT/gpu-model"
# Nsight Compute on the toy-size benchmark: the kernels issue 15 reshaped (fused box count, multi-block
# select, warp-per-row to_center, the tiled and register-blocked sums), a few launches each, full metric set.
NCU_CMD="ncu --target-processes all -k regex:box_rows|select_histogram|select_digit|lanes_kernel|tiled|blocked -c 24 --set full --csv --log-file $OUT/ncu.csv $PY bench/gpu_bench.py --device cuda --tiny --reps 1 --out $OUT/ncu-run"
HAVE_NCU=0
command -v ncu >/dev/null 2>&1 && HAVE_NCU=1

echo "gpu_session: device: ${NAME:-none found (nvidia-smi)}"
echo "gpu_session: results: $OUT"
echo "plan (time limit of each step in seconds):"
[ "$INSTALL" = 1 ] && echo "  1. install the cuda extra (150): $INSTALL_CMD"
echo "  2. device tests on the GPU (150): $TEST_CMD"
echo "  3. device benchmark (210): $GPU_BENCH_CMD"
echo "  4. performance model, ptxas -v and the H100 estimate (45): $MODEL_CMD"
if [ "$HAVE_NCU" = 1 ]; then
  echo "  5. Nsight Compute on the reshaped kernels (45): $NCU_CMD"
else
  echo "  5. Nsight Compute: ncu not installed, skipped"
fi
echo "  6. CPU benchmark on this host, what is left of 10 min: $CPU_BENCH_CMD"
"$PY" bench/gpu_bench.py --device cuda --dry-run | sed 's/^/  /' || { echo "gpu_session: import check failed" >&2; exit 1; }

if [ "$DRY" = 1 ]; then
  "$PY" -c "import cs_fast, cs_fast.kernels.cuda, cs_fast.kernels.mixed_precision, cs_fast_apps.bench.command" \
    || { echo "gpu_session: cs_fast imports failed" >&2; exit 1; }
  echo "gpu_session: dry run: imports ok, nothing run"
  exit 0
fi

mkdir -p "$OUT"
START=$(date +%s)
STATUS_JSON="$OUT/session.json"
echo "{" > "$STATUS_JSON"
printf '  "device": "%s",\n  "started": "%s",\n' "${NAME:-}" "$(date -u +%FT%TZ)" >> "$STATUS_JSON"

step() {  # step NAME LIMIT CMD...: run with a time limit, log into $OUT/NAME.log, record status and seconds
  local name="$1" limit="$2"; shift 2
  local t0=$(date +%s)
  echo "gpu_session: [$name] $*"
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  tail -n 5 "$OUT/$name.log" | sed "s/^/  [$name] /"
  printf '  "%s": {"rc": %d, "seconds": %d},\n' "$name" "$rc" "$dt" >> "$STATUS_JSON"
  return $rc
}

[ "$INSTALL" = 1 ] && step install 150 $INSTALL_CMD
"$PY" -c "import torch, numba.cuda as c; print('torch', torch.__version__, torch.cuda.is_available(), 'numba.cuda', c.is_available())" \
  > "$OUT/environment.txt" 2>&1
"$PY" -c "import cupy; print('cupy', cupy.__version__, cupy.cuda.runtime.getDeviceCount(), 'devices')" \
  >> "$OUT/environment.txt" 2>&1
nvidia-smi >> "$OUT/environment.txt" 2>&1
step gpu_tests 150 $TEST_CMD
step gpu_bench 210 $GPU_BENCH_CMD
step gpu_model 45 $MODEL_CMD
if [ "$HAVE_NCU" = 1 ]; then
  step ncu 45 $NCU_CMD
fi
LEFT=$(( 590 - ($(date +%s) - START) ))
if [ "$LEFT" -gt 30 ]; then
  step cpu_bench "$LEFT" $CPU_BENCH_CMD
fi
printf '  "total_seconds": %d\n}\n' "$(( $(date +%s) - START ))" >> "$STATUS_JSON"
echo "gpu_session: done in $(( $(date +%s) - START )) s; everything is under $OUT"
