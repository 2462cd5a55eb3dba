#!/usr/bin/env bash
# The peers of benchmarks/peers.py, each from its own code (git-ignored folders under benchmarks/):
#   bash benchmarks/setup_peers.sh torchrl|benchmarl|jaxmarl|epymarl|all
# torchrl:   pytorch/rl's sota-implementations/multiagent_trainer at the 0.14 release-prep commit, and Hydra 1.3 in
#            benchmarks/.torchrl-deps (a --target folder: nothing is added to .venv)
# benchmarl: benchmarks/setup_benchmarl.sh (.venv-benchmarl)
# jaxmarl:   benchmarks/setup_jaxmarl_reference.sh (the JaxMARL checkout; optax/flashbax in .venv beside the smax extra)
# epymarl:   uoe-agents/epymarl at cbc38c0 in benchmarks/.epymarl-src and its own venv benchmarks/.venv-epymarl
#            (what main.py needs for QMIX on LBF; torch pinned to the 2.13.0 CPU build, never a CUDA wheel)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
checkout() {  # URL DEST COMMIT [sparse paths...]
  local url=$1 dest=$2 commit=$3; shift 3
  if [ ! -d "$dest/.git" ]; then
    git clone --quiet --filter=blob:none --no-checkout "$url" "$dest"
    if [ $# -gt 0 ]; then git -C "$dest" sparse-checkout set "$@"; fi
  fi
  git -C "$dest" checkout --quiet "$commit"
}
torchrl() {
  checkout https://github.com/pytorch/rl benchmarks/.torchrl-src 373c31a85b30be19e5e1db5c466f25d15522ac98 \
    sota-implementations/multiagent_trainer
  .venv/bin/python -m pip install -q --target benchmarks/.torchrl-deps --no-deps "hydra-core==1.3.2" \
    "omegaconf==2.3.0" "antlr4-python3-runtime==4.9.3"
}
epymarl() {
  checkout https://github.com/uoe-agents/epymarl benchmarks/.epymarl-src cbc38c09588064eab978501d0f12c2cf58fa7fc2
  local venv=benchmarks/.venv-epymarl pin
  [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
  pin="$(mktemp)"; echo "torch==2.13.0" > "$pin"
  "$venv/bin/pip" install -q -c "$pin" "torch==2.13.0"
  "$venv/bin/pip" install -q -c "$pin" sacred pyyaml numpy gymnasium "lbforaging==2.0.0" scipy "setuptools<81"
  rm -f "$pin"
  "$venv/bin/python" -c "import torch, sacred, lbforaging; print('epymarl venv ok: torch', torch.__version__)"
}
case "${1:-all}" in
  torchrl) torchrl ;;
  benchmarl) bash benchmarks/setup_benchmarl.sh ;;
  jaxmarl) bash benchmarks/setup_jaxmarl_reference.sh ;;
  epymarl) epymarl ;;
  all) torchrl; bash benchmarks/setup_benchmarl.sh; bash benchmarks/setup_jaxmarl_reference.sh; epymarl ;;
  *) echo "usage: $0 torchrl|benchmarl|jaxmarl|epymarl|all" >&2; exit 2 ;;
esac
