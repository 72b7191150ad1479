"""The arithmetic of engine v2's exchange, without any transport: the time to split workers'
touched-row updates by owner, average each owner's share (the touched-row weighted rule) and
add the results to a replica, against the bytes each worker would send (issue 17).

    python benchmarks/bench_sparse_average.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dw2v import merge


def run(rows: int, dim: int, touched: int, workers: int, repeat: int) -> dict[str, float]:
    """Median seconds of each step for ``workers`` updates of ``touched`` random rows each
    (every owner's work done here, one after the other, on one core)."""
    rng = np.random.default_rng(0)
    replica = np.zeros((rows, dim), np.float32)
    updates = []
    for _ in range(workers):
        touches = np.zeros(rows)
        idx = rng.choice(rows, touched, replace=False)
        touches[idx] = rng.integers(1, 5, touched)
        after = replica.copy()
        after[idx] += rng.normal(size=(touched, dim)).astype(np.float32)
        updates.append(merge.touched_rows(after, replica, touches))
    merge.average_updates([merge.split_by_owner(updates[0], workers)[0]], rows)  # compile
    base = replica.copy()
    split, average, apply = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        parts = [merge.split_by_owner(u, workers) for u in updates]
        t1 = time.perf_counter()
        means = [merge.average_updates([p[o] for p in parts], rows) for o in range(workers)]
        t2 = time.perf_counter()
        for mean in means:
            merge.settle(replica, base, mean)
        t3 = time.perf_counter()
        split.append(t1 - t0)
        average.append(t2 - t1)
        apply.append(t3 - t2)
    return {"split": float(np.median(split)), "average": float(np.median(average)),
            "apply": float(np.median(apply)), "mb_per_worker": updates[0].nbytes / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print("| rows x dim | touched per worker | workers | MB offered per worker | split ms | "
          "average ms | apply ms | all, one core ms | per worker ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rows, dim, touched in ((30_000, 100, 15_000), (200_000, 300, 60_000)):
        for workers in (2, 4):
            r = run(rows, dim, touched, workers, args.repeat)
            total = (r["split"] + r["average"] + r["apply"]) * 1e3
            # each worker splits its own update, averages its own share and applies every share
            per_worker = (r["split"] + r["average"]) / workers * 1e3 + r["apply"] * 1e3
            print(f"| {rows:,} x {dim} | {touched:,} | {workers} | {r['mb_per_worker']:.1f} | "
                  f"{r['split'] * 1e3:.1f} | {r['average'] * 1e3:.1f} | "
                  f"{r['apply'] * 1e3:.1f} | {total:.1f} | {per_worker:.1f} |")


if __name__ == "__main__":
    main()
