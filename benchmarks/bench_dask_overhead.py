"""Benchmark: what Dask's background chores cost a 2-worker LocalCluster on a 2-core machine.

For Dask's default settings and for dw2v's ``QUIET_CLUSTER`` (what the embedded cluster uses),
alternately, ``--repeat`` times:
(1) idle: CPU seconds used by the driver process (client, scheduler, nannies) and by the worker
    processes over ``--seconds`` with no task running;
(2) busy: a Numba ``nogil`` loop on every worker for ``--seconds``; its iterations measure how
    much of the cores the kernels get while Dask runs beside them.

    python benchmarks/bench_dask_overhead.py [--workers 2] [--seconds 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import numpy as np


def spin(seconds: float) -> int:
    """Iterations of a fixed arithmetic loop done in ``seconds`` (compiled before timing)."""
    from numba import njit

    @njit(nogil=True, cache=False)
    def loop(n: int) -> float:
        s = 0.0
        for i in range(n):
            s += (i % 7) * 0.5
        return s

    loop(10)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        loop(5_000_000)
        done += 1
    return done


def run(quiet: bool, workers: int, seconds: float) -> dict[str, Any]:
    """One cluster: idle CPU seconds per process kind, then busy iterations per worker."""
    import psutil

    from dw2v.dask_cluster import QUIET_CLUSTER, local_cluster

    with local_cluster(workers, settings=QUIET_CLUSTER if quiet else {}) as client:
        client.run(lambda: __import__("numba"))
        time.sleep(2.0)  # let start-up settle
        me = psutil.Process()
        children = me.children(recursive=True)

        def cpu(proc: psutil.Process) -> float:
            times = proc.cpu_times()
            return times.user + times.system

        before = [cpu(me)] + [cpu(p) for p in children]
        time.sleep(seconds)
        after = [cpu(me)] + [cpu(p) for p in children]
        used = [b - a for a, b in zip(before, after)]
        futures = [client.submit(spin, seconds, pure=False, workers=[w])
                   for w in sorted(client.nthreads())]
        iterations = [f.result() for f in futures]
    return {"settings": "dw2v QUIET_CLUSTER" if quiet else "Dask defaults",
            "idle_driver_share": used[0] / seconds,
            "idle_workers_share": sum(used[1:]) / seconds,
            "busy_iterations": sum(iterations)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--_child", choices=["default", "quiet"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        print(json.dumps(run(args._child == "quiet", args.workers, args.seconds)))
        return
    results: dict[str, list[dict[str, Any]]] = {"default": [], "quiet": []}
    for _ in range(args.repeat):
        for kind in ("default", "quiet"):  # a fresh process each: settings apply at start
            done = subprocess.run([sys.executable, __file__, "--_child", kind, "--workers",
                                   str(args.workers), "--seconds", str(args.seconds)],
                                  capture_output=True, text=True, check=True)
            results[kind].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[kind][-1]), flush=True)
    print(f"\n{args.workers} workers, {args.seconds:.0f} s windows, {args.repeat} runs each "
          "(means; CPU as a share of one core)")
    print("| settings | idle: driver | idle: workers | busy: kernel iterations |")
    print("|---|---|---|---|")
    for kind, rows in results.items():
        print(f"| {rows[0]['settings']} | "
              f"{np.mean([r['idle_driver_share'] for r in rows]):.1%} | "
              f"{np.mean([r['idle_workers_share'] for r in rows]):.1%} | "
              f"{np.mean([r['busy_iterations'] for r in rows]):,.0f} |")
    ratios = [q["busy_iterations"] / d["busy_iterations"]
              for d, q in zip(results["default"], results["quiet"])]
    print(f"kernel iterations, QUIET_CLUSTER / Dask defaults: {np.mean(ratios):.3f}x "
          f"(per pair {min(ratios):.3f}-{max(ratios):.3f}x)")


if __name__ == "__main__":
    main()
