#!/usr/bin/env bash
# TorchRL's own TestQMixer on torchrl_vd.MixingQLoss (benchmarks/torchrl_loss_suite.py: what it runs and prints).
# Usage: bash benchmarks/torchrl_loss_suite.sh /path/to/pytorch/rl [options]
#        bash benchmarks/torchrl_loss_suite.sh --clone [--ref v0.14.1]
# PYTHON defaults to this repository's .venv if there is one, else python3.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(dirname "$HERE")"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export OMP_NUM_THREADS=1
exec "$PYTHON" "$HERE/torchrl_loss_suite.py" "$@"
