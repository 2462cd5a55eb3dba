#!/usr/bin/env bash
# A JaxMARL checkout for benchmarks/jaxmarl_qmix_reference.py (JaxMARL's own QMIX, run unmodified as the SMAX
# reference), plus the packages its baseline needs in .venv beside the `smax` extra (jaxmarl, jax, flax).
#   bash benchmarks/setup_jaxmarl_reference.sh [SOURCE]   # SOURCE: a git URL or path (default: GitHub)
set -euo pipefail
cd "$(dirname "$0")/.."
COMMIT=c793d095618c6d3edfb5632802348f57b70a4b94
SRC=${1:-https://github.com/FLAIROx/JaxMARL}
DEST=benchmarks/.jaxmarl-src
if [ ! -d "$DEST/.git" ]; then  # only baselines/QLearning is checked out (the driver needs nothing else)
  git clone --quiet --no-checkout "$SRC" "$DEST"
  git -C "$DEST" sparse-checkout set baselines/QLearning
fi
git -C "$DEST" checkout --quiet "$COMMIT"
# optax, flashbax and pyyaml for the baseline; --no-deps where a package would pull gymnax, which pins an
# older gymnasium (the driver stubs the two gymnax classes jaxmarl's wrappers test against)
.venv/bin/python -m pip install -q optax pyyaml "flashbax==0.1.3"
.venv/bin/python -c "import jax, jaxmarl, optax, flashbax; print('jaxmarl reference ok: jax', jax.__version__)"
