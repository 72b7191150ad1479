"""Benchmark: engine v2's exchange in step against ``--overlap`` (the exchange beside the next
round's training, one round stale), 2 single-threaded workers on the embedded LocalCluster.

Each run is a fresh process; the two settings alternate, so each pair shares the machine's
state of the moment. Prints per run: training words/s over the rounds, the exchange's share
of the rounds' seconds, the mean training and round milliseconds; with 5 epochs also
WordSim-353 and analogy accuracy (bench_train.py's evaluators).

    python benchmarks/bench_overlap.py [--corpus DIR] [--epochs 2] [--trials 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))


def child(corpus: str, overlap: bool, epochs: int, out: Path) -> dict:
    import numpy as np

    import dw2v
    from bench_train import SETTINGS, evaluate
    from dw2v.dask_cluster import local_cluster

    config = dw2v.RunConfig(
        vocab=dw2v.VocabConfig(min_count=SETTINGS["min_count"], sample=SETTINGS["sample"]),
        train=dw2v.TrainConfig(vector_size=SETTINGS["vector_size"], window=SETTINGS["window"],
                               negative=SETTINGS["negative"], epochs=epochs,
                               alpha=SETTINGS["alpha"], min_alpha=SETTINGS["min_alpha"],
                               seed=1, overlap=overlap))
    with local_cluster(2) as client:
        client.run(lambda: __import__("dw2v.kernels.cpu"))
        started = time.perf_counter()
        model = dw2v.train([corpus], out / "model", config, client=client, overwrite=True)
        wall = time.perf_counter() - started
    rounds = model.meta["rounds"]
    seconds = sum(r["seconds"] for r in rounds)
    result = {"overlap": overlap, "rounds": len(rounds),
              "words_per_s": sum(r["words"] for r in rounds) / seconds,
              "exchange_share": sum(r.get("seconds_exchange", 0.0) for r in rounds) / seconds,
              "train_ms": 1000 * float(np.mean([r["seconds_training"] for r in rounds])),
              "round_ms": 1000 * float(np.mean([r["seconds"] for r in rounds])),
              "wall_seconds": wall}
    if epochs == 5:
        np.save(out / "vectors.npy", model.vectors)
        (out / "vectors.words.json").write_text(json.dumps(model.words))
        result.update(evaluate(out / "vectors"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default=str(REPO.parent / "shared" / "data" / "devcorpus"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--_child", nargs=2, help=argparse.SUPPRESS)  # overlap (0/1), out dir
    args = parser.parse_args()
    if args._child:
        print(json.dumps(child(args.corpus, args._child[0] == "1", args.epochs,
                               Path(args._child[1]))))
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
