#!/usr/bin/env bash
# The GPU check, one command for a lent GPU machine (one H100/H200; under 8 minutes):
# installs dw2v with its GPU extra, runs the `gpu` tests (the kernels against the NumPy
# reference, the device replica, `dw2v train --device gpu` end to end, CPU/GPU quality parity
# on the devcorpus), then benchmarks in one run on the same corpus dw2v on the GPU, dw2v on
# every CPU core and gensim on every core, and dw2v on the GPU over a synthetic Zipf corpus
# (benchmarks/bench_gpu.py): words/s, quality, and words/s as a share of the memory-bandwidth
# bound. Everything is printed and written under $DW2V_GPU_OUT (default $OUT, else
# benchmarks/_data/gpu_check): install.log, tests.log, bench.log, gpu_check.json.
#
#   bash benchmarks/gpu_check.sh            # on the GPU machine, from anywhere
#
# Environment: DW2V_DEVCORPUS, DW2V_EVAL (default ../shared/data/{devcorpus,eval} beside the
# checkout); DW2V_WHEELS=DIR installs the wheels in DIR beside what the machine has (one
# without network: benchmarks/gpu_wheels.sh makes them);
# DW2V_NO_INSTALL=1 skips the install; PYTHON (default python3). `--smoke` runs the script's
# steps on a tiny corpus, for checking it where there is no GPU (NUMBA_ENABLE_CUDASIM=1).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
out=${DW2V_GPU_OUT:-${OUT:-$repo/benchmarks/_data/gpu_check}}
mkdir -p "$out"
export DW2V_DEVCORPUS=${DW2V_DEVCORPUS:-$repo/../shared/data/devcorpus}
export DW2V_EVAL=${DW2V_EVAL:-$repo/../shared/data/eval}
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
smoke=()
[ "${1:-}" = "--smoke" ] && smoke=(--smoke)
started=$(date +%s)
status=0

if [ -n "${DW2V_WHEELS:-}" ]; then
  # a machine without network (benchmarks/gpu_wheels.sh made the wheels): its own CuPy and
  # numba-cuda, the wheels it lacks beside them, dw2v from the checkout
  echo "== installing the wheels in $DW2V_WHEELS"
  if ! "$py" -m pip install -q --no-index --no-deps --no-compile --target /tmp/dw2v-site \
      "$DW2V_WHEELS"/*.whl >"$out/install.log" 2>&1; then
    tail -20 "$out/install.log"; echo "gpu_check: the install failed ($out/install.log)"; exit 1
  fi
  export PYTHONPATH="$repo:/tmp/dw2v-site${PYTHONPATH:+:$PYTHONPATH}"
elif [ "${DW2V_NO_INSTALL:-0}" != 1 ]; then
  # the driver's CUDA major version picks CuPy's wheel
  cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: \([0-9]*\).*/\1/p' | head -1)
  extra=gpu
  [ "${cuda:-12}" -ge 13 ] && extra=gpu-cuda13
  echo "== installing dw2v[$extra,test,bench] (CUDA ${cuda:-unknown})"
  if ! "$py" -m pip install -q -e ".[$extra,test,bench]" >"$out/install.log" 2>&1; then
    tail -20 "$out/install.log"; echo "gpu_check: the install failed ($out/install.log)"; exit 1
  fi
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
  | tee "$out/gpu.txt"

echo "== the gpu tests"
if [ ${#smoke[@]} -eq 0 ]; then
  timeout 240 "$py" -m pytest -m gpu -q -rA tests/kernels/test_gpu_kernel.py \
    tests/test_gpu_train.py tests/test_gpu_parity.py 2>&1 | tee "$out/tests.log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

echo "== benchmark (bench_gpu.py)"
timeout 330 "$py" benchmarks/bench_gpu.py --corpus "$DW2V_DEVCORPUS" --eval "$DW2V_EVAL" \
  --out "$out/gpu_check.json" "${smoke[@]}" 2>&1 | tee "$out/bench.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
echo "gpu_check: done in $(( $(date +%s) - started )) s, status $status; files in $out"
exit $status
