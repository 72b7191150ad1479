"""Benchmark: what a second core gives a word2vec trainer on this machine, without Dask.

dw2v's training kernel (skip-gram, default settings) trains one half of the corpus's token-id
shards in one process; then both halves in two processes at once. gensim 4 trains the whole
corpus (the same tokens) with 1, then 2 worker threads on one shared model. Each pair of runs
is repeated ``--repeats`` times, alternating; words/s = words read / seconds of the training
call (dw2v after a warm-up call that loads its kernels; gensim ``train()``, one epoch). The
ratios bound what ``bench_distributed.py`` can measure for 2 workers / 1 worker, which adds
rounds, averaging and Dask on top of the same kernel.

    python benchmarks/bench_concurrency.py [--corpus DIR] [--repeats 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_train import SETTINGS, SHARED, prepare  # noqa: E402


def _dw2v_half(work: str, half: int, barrier: Any, out: Any) -> None:
    """Train half ``half`` (every other shard) for one epoch, starting with the others."""
    from dw2v.config import TrainConfig
    from dw2v.shard_train import SamplingTables, init_params, train_shards
    from dw2v.vocab import load

    vocab = load(Path(work) / "vocab")
    tables = SamplingTables.from_vocab(vocab)
    config = TrainConfig(vector_size=SETTINGS["vector_size"], window=SETTINGS["window"],
                         negative=SETTINGS["negative"], seed=1 + half)
    shards = sorted((Path(work) / "vocab" / "work").glob("shard-*"))[half::2]
    params = init_params(len(vocab), config.vector_size, config.seed)
    train_shards(shards[:1], params, tables, config, lr_start=0.0, lr_end=0.0, seed=0)  # load
    barrier.wait()
    started = time.perf_counter()
    _, counters = train_shards(shards, params, tables, config, lr_start=SETTINGS["alpha"],
                               lr_end=SETTINGS["min_alpha"], seed=config.seed, epochs=1)
    out.put((half, counters.words_read / (time.perf_counter() - started)))


def run_dw2v(work: Path, processes: int) -> list[float]:
    """Words/s of each of ``processes`` kernel processes started together (fresh processes)."""
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_dw2v_half, args=(str(work), half, barrier, out))
             for half in range(processes)]
    for p in procs:
        p.start()
    rates = dict(out.get(timeout=600) for _ in procs)
    for p in procs:
        p.join()
    return [rates[h] for h in range(processes)]


def run_gensim(sentences: list[list[str]], threads: int) -> float:
    """Words/s of one gensim epoch with ``threads`` worker threads (a fresh model)."""
    from gensim.models import Word2Vec

    w2v = Word2Vec(sg=1, hs=0, workers=threads, seed=1,
                   **{k: v for k, v in SETTINGS.items() if k != "epochs"})
    w2v.build_vocab(sentences)
    started = time.perf_counter()
    w2v.train(sentences, total_examples=w2v.corpus_count, epochs=1)
    return sum(len(s) for s in sentences) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-conc-") as tmp:
        work = Path(tmp)
        prepare(args.corpus, work)
        sentences = [s for s in pq.read_table(work / "tokens.parquet")["tokens"].to_pylist()
                     if s]
        for repeat in range(args.repeats):
            one, two = run_dw2v(work, 1), run_dw2v(work, 2)
            g1, g2 = run_gensim(sentences, 1), run_gensim(sentences, 2)
            row = {"repeat": repeat, "dw2v_one": one[0], "dw2v_two": two,
                   "dw2v_ratio": sum(two) / one[0], "gensim_1t": g1, "gensim_2t": g2,
                   "gensim_ratio": g2 / g1}
            rows.append(row)
            print(json.dumps(row), flush=True)
    mean = {k: float(np.mean([r[k] for r in rows]))
            for k in ("dw2v_one", "dw2v_ratio", "gensim_1t", "gensim_2t", "gensim_ratio")}
    pair = float(np.mean([sum(r["dw2v_two"]) for r in rows]))
    print(f"\ndw2v kernel: one process {mean['dw2v_one']:,.0f} words/s, two at once "
          f"{pair:,.0f} (sum): {mean['dw2v_ratio']:.2f}x (per repeat "
          f"{min(r['dw2v_ratio'] for r in rows):.2f}-{max(r['dw2v_ratio'] for r in rows):.2f}x)")
    print(f"gensim: 1 thread {mean['gensim_1t']:,.0f} words/s, 2 threads "
          f"{mean['gensim_2t']:,.0f}: {mean['gensim_ratio']:.2f}x (per repeat "
          f"{min(r['gensim_ratio'] for r in rows):.2f}-"
          f"{max(r['gensim_ratio'] for r in rows):.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
