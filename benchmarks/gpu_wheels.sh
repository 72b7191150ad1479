#!/usr/bin/env bash
# Prepares, on a machine with network, what benchmarks/gpu_check.sh needs on a GPU machine
# without one (this project's lent H100/H200 image: Python 3.12 with CuPy, numba-cuda, numpy,
# pyarrow, scipy, matplotlib, pytest and pytest-timeout already installed, nothing fetchable):
#   .whl/       the wheels that image lacks (dask, distributed, bokeh, gensim and their
#               dependencies it lacks), for CPython 3.12 on manylinux x86-64, about 36 MB;
#   .gpu_data/  the development corpus and the evaluation files (about 9 MB).
# Both are git-ignored. Then, on the GPU machine (the device tool: carry .whl and .gpu_data):
#   DW2V_WHEELS=.whl DW2V_DEVCORPUS=.gpu_data/devcorpus DW2V_EVAL=.gpu_data/eval \
#     bash benchmarks/gpu_check.sh
# FAISS and usearch are left out (the search backends: the GPU check does not use them).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
shared=${DW2V_SHARED:-../shared/data}
rm -rf .whl && mkdir -p .whl
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  dask==2026.8.0 distributed==2026.8.0 bokeh==3.9.2 tornado==6.6.1 zict==3.0.0 tblib==3.2.2 \
  locket==1.0.0 partd==1.4.2 xyzservices==2026.9.1 gensim==4.4.0 smart_open==9.0.2 \
  tomli_w==1.2.0
rm -rf .gpu_data && mkdir -p .gpu_data
cp -r "$shared/devcorpus" "$shared/eval" .gpu_data/
du -sh .whl .gpu_data
