"""Benchmark: engine v2's exchange in step against ``--overlap`` (the exchange beside the next
round's training, one round stale), 2 single-threaded workers on the embedded LocalCluster.

Each run is a fresh process (bench_distributed.py's ``run_dw2v``, default ``--sync-every``,
seed 1); the two settings alternate, so each pair shares the machine's state of the moment.
Prints per run: training words/s over the rounds, the exchange's share of the rounds' seconds,
the mean training and round milliseconds; with 5 epochs also WordSim-353 and analogy accuracy.

    python benchmarks/bench_overlap.py [--corpus DIR] [--epochs 2] [--trials 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

KEYS = ("overlap", "rounds", "words_per_s", "exchange_share", "training_ms", "round_ms",
        "wall_seconds", "spearman", "analogy")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "data" / "devcorpus"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)  # overlap (0/1), out dir
    args = parser.parse_args()
    if args._child:
        from bench_distributed import run_dw2v

        overlap = args._child[0] == "1"
        result = run_dw2v(Path(args.corpus), Path(args._child[1]), 2, "auto", 1,
                          quality=args.epochs == 5, overlap=overlap, epochs=args.epochs)
        result["overlap"] = overlap
        print(json.dumps({k: result[k] for k in KEYS if k in result}))
        return
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.trials):
            for overlap in ("0", "1"):
                done = subprocess.run([sys.executable, __file__, "--corpus", args.corpus,
                                       "--epochs", str(args.epochs),
                                       "--_child", overlap, f"{work}/o{overlap}"],
                                      capture_output=True, text=True)
                if done.returncode:
                    raise RuntimeError(done.stderr[-3000:])
                print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
