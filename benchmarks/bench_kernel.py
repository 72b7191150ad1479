"""Benchmark: one CPU kernel call over a whole corpus's token ids, nothing else timed.

For A/B runs of a kernel change (RESULTS §21): the corpus's dw2v token shards (prepared once
by ``bench_train.py``'s vocabulary stage into ``--work``) are joined into one array, and
``cpu_train.train`` runs one epoch over them ``--calls`` times after a warm-up call that
compiles or loads the kernel. Run it alternately with ``PYTHONPATH`` pointing at the trees
being compared (``git worktree add /tmp/old COMMIT``).

    python benchmarks/bench_kernel.py [--corpus DIR] [--work DIR] [--model skipgram|cbow]
                                      [--threads 1] [--calls 2] [--dim 100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import SETTINGS, SHARED, prepare  # noqa: E402


def joined_ids(work: Path) -> tuple[np.ndarray, np.ndarray]:
    """Every shard's token ids as one int32 array, and its sentence offsets."""
    from dw2v.token_shards import read_token_shard

    shards = [read_token_shard(p) for p in sorted((work / "vocab" / "work").glob("shard-*"))]
    ids = np.concatenate([np.asarray(s.ids) for s in shards]).astype(np.int32)
    offsets = [np.asarray(shards[0].offsets)]
    for shard in shards[1:]:
        offsets.append(np.asarray(shard.offsets)[1:] + offsets[-1][-1])
    return ids, np.concatenate(offsets).astype(np.int64)


def prepared(corpus: Path, work: Path) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    """The corpus's vocabulary, sampling tables, joined token ids and sentence offsets, from
    bench_train.py's vocabulary stage in ``work`` (run first if absent)."""
    from dw2v.shard_train import SamplingTables
    from dw2v.vocab import load

    if not (work / "vocab" / "work").is_dir():
        work.mkdir(parents=True, exist_ok=True)
        prepare(corpus, work)
    vocab = load(work / "vocab")
    ids, offsets = joined_ids(work)
    return vocab, SamplingTables.from_vocab(vocab), ids, offsets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/_data/kernel-work"),
                        help="bench_train.py's prepared vocabulary and shards (made if absent)")
    parser.add_argument("--model", default="skipgram", choices=["skipgram", "cbow"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--dim", type=int, default=SETTINGS["vector_size"])
    args = parser.parse_args()

    from dw2v.kernels import cpu_train
    from dw2v.shard_train import LOSS_EVERY, init_params

    vocab, tables, ids, offsets = prepared(args.corpus, args.work)
    params = init_params(len(vocab), args.dim, 1)
    W_in, W_out = np.array(params.W_in), np.array(params.W_out)
    sg = args.model == "skipgram"
    settings = dict(sg=sg, shared_negatives=sg, window=SETTINGS["window"],
                    negative=SETTINGS["negative"], lr_start=SETTINGS["alpha"],
                    lr_end=SETTINGS["min_alpha"], seed=1, threads=args.threads,
                    loss_every=LOSS_EVERY)
    tables_args = (tables.keep_prob, tables.alias_prob, tables.alias_idx)
    warm = int(offsets[min(100, len(offsets) - 1)])
    cpu_train.train(ids[:warm], offsets[:min(101, len(offsets))], W_in, W_out, *tables_args,
                    **settings)
    seconds = []
    for _ in range(args.calls):
        started = time.perf_counter()
        counters, _ = cpu_train.train(ids, offsets, W_in, W_out, *tables_args, **settings)
        seconds.append(time.perf_counter() - started)
    print(f"{args.model}, {args.threads} thread(s), {len(ids):,} words, "
          f"{counters[1]:,.0f} kept: {' '.join(f'{s:.2f}' for s in seconds)} s; "
          f"{len(ids) / min(seconds):,.0f} words/s (best call)")


if __name__ == "__main__":
    main()
