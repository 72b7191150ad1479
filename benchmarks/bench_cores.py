"""Benchmark: what a second thread gives on this machine to work that shares nothing.

A Numba ``prange`` loop of pure arithmetic (a sum of sines per item, no memory traffic to
speak of) timed at 1 and at 2 threads, alternately, ``--trials`` times. Its 2-thread speed-up
is the ceiling for any kernel here: the training kernels' own 1-to-2-thread gain (RESULTS.md
§21, §22) is read against it, not against 2.0x.

    python benchmarks/bench_cores.py --trials 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
from numba import njit, prange


@njit(parallel=True, nogil=True, cache=True)
def _sines(n: int, reps: int) -> np.ndarray:
    out = np.zeros(n)
    for i in prange(n):
        x = 0.0
        for r in range(reps):
            x += np.sin(i * 0.001 + r)
        out[i] = x
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=20000)
    args = parser.parse_args()
    _sines(64, 10)  # compile (or load from the cache) outside the timing
    seconds: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.trials):
        for threads in (1, 2):
            numba.set_num_threads(threads)
            started = time.perf_counter()
            _sines(args.items, args.reps)
            seconds[threads].append(time.perf_counter() - started)
    ratios = [one / two for one, two in zip(seconds[1], seconds[2])]
    print("1 thread :", " ".join(f"{s:.2f}" for s in seconds[1]), "s")
    print("2 threads:", " ".join(f"{s:.2f}" for s in seconds[2]), "s")
    print("speed-up :", " ".join(f"{r:.2f}x" for r in ratios),
          f"(median {statistics.median(ratios):.2f}x)")


if __name__ == "__main__":
    main()
