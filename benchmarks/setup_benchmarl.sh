#!/usr/bin/env bash
# Installs BenchMARL 1.5.2 into its own venv (default /work/main/.venv-benchmarl, git-ignored via .venv*).
# BenchMARL 1.5.2 pins torchrl < 0.12, which cannot live beside torchrl_vd's torchrl 0.14.
# Usage: bash benchmarks/setup_benchmarl.sh [VENV_DIR]
set -euo pipefail
VENV="${1:-$(cd "$(dirname "$0")/.." && pwd)/.venv-benchmarl}"
PY="${PYTHON:-python3}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import benchmarl, torchrl, vmas" 2>/dev/null; then
  echo "BenchMARL venv ready: $VENV"; exit 0
fi
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# Pin torch to the CPU build 2.13.0 on disk (the one torchrl_vd uses): BenchMARL requires torchvision,
# whose newest wheel would otherwise pull torch 2.14.1 with CUDA (5+ GB) and compare different torches.
PIN="$(mktemp)"; echo "torch==2.13.0" > "$PIN"
"$VENV/bin/pip" install -q -c "$PIN" "torch==2.13.0"
"$VENV/bin/pip" install -q -c "$PIN" "benchmarl==1.5.2" "vmas==1.5.2" torchvision
rm -f "$PIN"
"$VENV/bin/python" -c "import benchmarl, torchrl, tensordict, vmas, torch; print('benchmarl', benchmarl.__version__, 'torchrl', torchrl.__version__, 'tensordict', tensordict.__version__, 'vmas', vmas.__version__, 'torch', torch.__version__)"
