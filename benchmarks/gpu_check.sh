#!/usr/bin/env bash
# The library on a GPU in one command (sized for at most 8 minutes on an H100):
#   1. the gpu tests: python -m pytest tests/test_gpu.py -m gpu (every registered algorithm trains on CUDA on VMAS
#      and a matrix game; the update copies nothing between host and device; --seeds 0-63; checkpoints resume and
#      runs evaluate across CPU <-> CUDA; the IGM evaluation on CUDA gives the CPU's numbers);
#   2. the figures (benchmarks/gpu_check.py, the existing benchmarks' code): VMAS balance collection at
#      1024/4096/16384 envs (env-steps/s, GPU vs this machine's CPU), the QMIX step at batch 128/4096 (ms), the MPE
#      config's GRU-256 step (ms), 64 seeds of the VMAS preset in one process vs 1 seed (seed-frames/s).
# It prints the card's name (torch.cuda.get_device_name) and, when OUT is set, writes $OUT/gpu_check.json (the
# figures) and $OUT/gpu_check.log (everything printed).
#
#   bash benchmarks/gpu_check.sh                        # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --device cpu --quick   # the dry run on a CPU (tests/test_gpu.py runs it)
#   options: --skip-tests, --cpu-threads N (torch threads of the CPU comparison, default 1); PYTHON=... picks the
#   interpreter (default: .venv/bin/python when it imports torch, else python3)
#
# On the lent device machine: its python3 holds a CUDA build of torch but none of torchrl, tensordict, vmas (and
# a virtual environment made here is another Python and a CPU torch: do not carry .venv). Bring them as wheels:
#   here:  bash benchmarks/gpu_wheels.sh          # downloads them into .whl/ (git-ignored) for its Python 3.12
#   there: bash benchmarks/gpu_check.sh           # run with carry [".whl"]; it installs .whl/*.whl into a temp dir
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

DEVICE=cuda QUICK="" SKIP_TESTS="" CPU_THREADS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --skip-tests) SKIP_TESTS=1; shift ;;
    --cpu-threads) CPU_THREADS="$2"; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ] && .venv/bin/python -c "import torch" 2>/dev/null; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# the wheels gpu_wheels.sh downloaded, carried to the device machine: installed where this Python lacks the packages
if compgen -G ".whl/*.whl" >/dev/null && ! "$PYTHON" -c "import torchrl, tensordict, vmas" 2>/dev/null; then
  SITE="$(mktemp -d /tmp/gpu_check_site.XXXX)"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl || exit 1
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 RL_WARNINGS=False

LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; LOG="$OUT/gpu_check.log"; fi
JSON="${OUT:+$OUT/gpu_check.json}"

{
  echo "gpu_check: device=$DEVICE quick=${QUICK:-0} python=$PYTHON ($("$PYTHON" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'))"
  if [ "$DEVICE" != cpu ]; then
    "$PYTHON" -c "import torch; print('card:', torch.cuda.get_device_name(0))" || exit 1
  fi
  TESTS_RC=""; TESTS_S=""
  if [ -z "$SKIP_TESTS" ]; then
    start=$SECONDS
    if [ "$DEVICE" = cpu ]; then  # the cpu variants (the dry run: one of them)
      SELECT=(-m "not gpu and not slow" -k "${QUICK:+update_moves and cpu-qmix and }not dry_run")
    else
      SELECT=(-m gpu)
    fi
    timeout "${TESTS_TIMEOUT:-330}" "$PYTHON" -m pytest -p no:cacheprovider -q -rfEs tests/test_gpu.py "${SELECT[@]}"
    TESTS_RC=$?; TESTS_S=$((SECONDS - start))
    echo "gpu_check: tests exit code $TESTS_RC in ${TESTS_S} s"
  fi
  "$PYTHON" benchmarks/gpu_check.py --device "$DEVICE" ${QUICK:+--quick} --cpu-threads "$CPU_THREADS" \
    ${JSON:+--out "$JSON"} ${TESTS_RC:+--tests-exit-code "$TESTS_RC" --tests-seconds "$TESTS_S"}
  BENCH_RC=$?
  echo "gpu_check: done in ${SECONDS} s (tests exit code ${TESTS_RC:-skipped}, figures exit code $BENCH_RC)"
  [ "${TESTS_RC:-0}" -eq 0 ] && [ "$BENCH_RC" -eq 0 ]
} 2>&1 | tee "$LOG"
