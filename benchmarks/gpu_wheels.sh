#!/usr/bin/env bash
# Prepares, on a machine with network, what benchmarks/gpu_check.sh needs on a GPU machine
# without one (this project's lent H100/H200 image: Python 3.12 with CuPy, numba-cuda, numpy,
# pyarrow, scipy, matplotlib, pytest and pytest-timeout already installed, nothing fetchable):
#   .dw2v-gpu-wheels/  the wheels that image lacks (dask, distributed, bokeh, gensim and their
#                      dependencies it lacks), for CPython 3.12 on manylinux x86-64, about 36 MB;
#   .dw2v-gpu-data/    the development corpus and the evaluation files (about 9 MB).
# Both are git-ignored. Then, on the GPU machine (the device tool: carry both):
#   DW2V_WHEELS=.dw2v-gpu-wheels DW2V_DEVCORPUS=.dw2v-gpu-data/devcorpus \
#     DW2V_EVAL=.dw2v-gpu-data/eval bash benchmarks/gpu_check.sh
# FAISS and usearch are left out (the search backends: the GPU check does not use them).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
shared=${DW2V_SHARED:-../shared/data}
# each directory is replaced only if this script made it (its marker file): never a user's
fresh() {
  if [ -e "$1" ] && [ ! -e "$1/.made-by-gpu_wheels" ]; then
    echo "gpu_wheels: $1 exists and was not made by this script; move it first" >&2; exit 1
  fi
  rm -rf "$1" && mkdir -p "$1" && touch "$1/.made-by-gpu_wheels"
}
fresh .dw2v-gpu-wheels
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .dw2v-gpu-wheels \
  dask==2026.8.0 distributed==2026.8.0 bokeh==3.9.2 tornado==6.6.1 zict==3.0.0 tblib==3.2.2 \
  locket==1.0.0 partd==1.4.2 xyzservices==2026.9.1 gensim==4.4.0 smart_open==9.0.2 \
  tomli_w==1.2.0
fresh .dw2v-gpu-data
cp -r "$shared/devcorpus" "$shared/eval" .dw2v-gpu-data/
du -sh .dw2v-gpu-wheels .dw2v-gpu-data
