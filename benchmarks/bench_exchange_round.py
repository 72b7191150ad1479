"""One exchange round of engine v2 end to end, on real worker processes: resident tasks join a
``dw2v.exchange.Group`` and call ``Group.average`` on both matrices' touched rows (reduce-scatter
to the owners, the owners' touched-row weighted average, all-gather), then apply the result;
the median time per round, per worker (issue 17).

    python benchmarks/bench_exchange_round.py [--workers 2] [--rounds 30]
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

import numpy as np

from dw2v import exchange, merge
from dw2v.dask_cluster import local_cluster

CASES = ((30_000, 100, 2_000), (30_000, 100, 15_000), (200_000, 300, 20_000))


def _resident(job: str, addresses: list[str], rounds: int) -> dict[str, Any]:
    from distributed import get_worker

    rank = addresses.index(get_worker().address)
    group = exchange.Group.join(job, addresses)
    out: dict[str, Any] = {}
    try:
        for rows, dim, touched in CASES:
            rng = np.random.default_rng([rank, rows, touched])
            replicas = [np.zeros((rows, dim), np.float32) for _ in range(2)]
            bases = [np.zeros((rows, dim), np.float32) for _ in range(2)]
            times = []
            for r in range(rounds + 1):
                if r == 1:
                    seconds = dict(group.seconds)
                updates = []
                for _ in replicas:
                    touches = np.zeros(rows)
                    idx = rng.choice(rows, touched, replace=False)
                    touches[idx] = rng.integers(1, 5, touched)
                    updates.append(merge.RowUpdate(
                        idx.astype(np.int32), rng.normal(size=(touched, dim)).astype(np.float32),
                        touches[idx].astype(np.float32)))
                started = time.perf_counter()
                averaged = group.average(updates, [rows, rows], r)
                for replica, base, parts in zip(replicas, bases, averaged):
                    merge.settle(replica, base, parts)
                if r:  # the first round compiles the kernels
                    times.append(time.perf_counter() - started)
            steps = {k: (group.seconds[k] - seconds[k]) / rounds for k in seconds}
            out[f"{rows}x{dim}/{touched}"] = (float(np.median(times)),
                                              float(np.percentile(times, 90)),
                                              2 * updates[0].nbytes, steps)
    finally:
        group.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--switch-interval", type=float, default=None,
                        help="the workers' sys.setswitchinterval (seconds; Python's is 0.005)")
    args = parser.parse_args()
    with local_cluster(args.workers) as client:
        addresses = sorted(client.nthreads())
        if args.switch_interval is not None:
            import sys
            client.run(sys.setswitchinterval, args.switch_interval)
        job = uuid.uuid4().hex[:8]
        client.run(exchange.register, job)
        results = client.gather([client.submit(_resident, job, addresses, args.rounds,
                                               workers=[a], pure=False) for a in addresses])
    print(f"| rows x dim | touched rows per matrix per worker | MB offered per worker (both "
          f"matrices) | median ms per round ({args.workers} workers, slowest) | p90 ms | "
          "mean ms split / transfer / average (slowest) |")
    print("|---|---|---|---|---|---|")
    for rows, dim, touched in CASES:
        key = f"{rows}x{dim}/{touched}"
        median = max(r[key][0] for r in results) * 1e3
        p90 = max(r[key][1] for r in results) * 1e3
        steps = " / ".join(f"{max(r[key][3][k] for r in results) * 1e3:.1f}"
                           for k in ("split", "transfer", "average"))
        print(f"| {rows:,} x {dim} | {touched:,} | {results[0][key][2] / 1e6:.1f} | "
              f"{median:.1f} | {p90:.1f} | {steps} |")


if __name__ == "__main__":
    main()
