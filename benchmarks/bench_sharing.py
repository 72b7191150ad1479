"""Benchmark: what Hogwild sharing costs a kernel on 2 threads: the two halves of a corpus
(``cpu_train.split_sentences``) trained one after the other, then at once on two threads over
the same matrices (Hogwild, as dw2v trains), then at once over a private copy each (no row
shared; not a valid training, only the ceiling without sharing).

The corpus's dw2v token shards are bench_kernel.py's (``--work``, prepared once).

    python benchmarks/bench_sharing.py [--model cbow|skipgram] [--trials 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kernel import prepared  # noqa: E402
from bench_train import SETTINGS, SHARED  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/_data/kernel-work"))
    parser.add_argument("--model", default="cbow", choices=["skipgram", "cbow"])
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()

    from dw2v.kernels import cpu, cpu_train
    from dw2v.shard_train import LOSS_EVERY, init_params

    vocab, tables, ids, offsets = prepared(args.corpus, args.work)
    kernel = cpu.train_sg_batch if args.model == "skipgram" else cpu.train_cbow
    halves = cpu_train.split_sentences(offsets, 2)
    start = init_params(len(vocab), SETTINGS["vector_size"], 1)
    none = np.zeros(0, np.int64)
    window, negative = SETTINGS["window"], SETTINGS["negative"]
    no_trace = (np.full((0, 2 * window), -1, np.int64), np.zeros((0, negative + 1), np.int64),
                np.full(0, np.nan))

    def matrices() -> tuple[np.ndarray, np.ndarray]:
        return np.array(start.W_in), np.array(start.W_out)

    def run(part: int, W_in: np.ndarray, W_out: np.ndarray) -> None:
        lo, hi = halves[part]
        kernel(ids, offsets, lo, hi, W_in, W_out, tables.keep_prob, tables.alias_prob,
               tables.alias_idx, window, negative, SETTINGS["alpha"], SETTINGS["min_alpha"],
               np.uint64(part + 1), LOSS_EVERY, np.zeros(5), none, none, *no_trace)

    def at_once(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
        threads = [threading.Thread(target=run, args=(part, *pair))
                   for part, pair in enumerate(pairs)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    run(0, *matrices())  # loads the kernel
    for _ in range(args.trials):
        shared = matrices()
        started = time.perf_counter()
        run(0, *shared)
        run(1, *shared)
        serial = time.perf_counter() - started
        together = at_once([matrices()] * 2)
        private = at_once([matrices(), matrices()])
        print(f"{args.model}: one after the other {serial:.3f} s; two threads, shared "
              f"{together:.3f} s ({serial / together:.2f}x); private copies {private:.3f} s "
              f"({serial / private:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
