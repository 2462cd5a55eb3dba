#!/usr/bin/env bash
# The Python packages benchmarks/gpu_check.sh needs on the lent GPU machine and that its image lacks (it has
# python3 3.12 with a CUDA torch, numpy, matplotlib, pytest, tqdm, six, cloudpickle, zipp; no torchrl, tensordict,
# vmas), downloaded here as wheels for that Python into .whl/ (git-ignored). Carry .whl to the machine; gpu_check.sh
# installs .whl/*.whl into a temp dir there. The versions are this project's (pyproject: torchrl 0.14, tensordict
# 0.14, vmas 1.5) with their own requirements; vmas and gym have no wheel on PyPI, so they are built here (pure
# Python). About 6 MB in all (the device machine takes a working tree of at most 64 MiB).
#
#   bash benchmarks/gpu_wheels.sh [PYTHON_VERSION]    # default 3.12
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYV="${1:-3.12}"
PY="${PYTHON:-python3}"
mkdir -p "$ROOT/.whl"
cd "$ROOT/.whl"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do PLATFORMS+=(--platform "$p"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
  "${PLATFORMS[@]}" -d . \
  "torchrl==0.14.1" "tensordict==0.14.3" "hoptorch==0.1.4" "pyvers==0.2.3" "orjson==3.13.0" \
  "importlib_metadata==10.2.0" "lazy-importer==0.1.0" "gym_notices==0.0.8" "pyglet==1.5.27"
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w . "vmas==1.5.2" "gym==0.26.2"  # sdists: py3 wheels built here
ls -1 "$ROOT/.whl"
du -sh "$ROOT/.whl"
