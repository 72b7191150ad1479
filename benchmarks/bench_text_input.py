"""Benchmark: plain-text input against Parquet input on the same corpus, and against gensim's
``corpus_file`` mode, in one run.

The corpus's text column is written once as a plain text file (one document per line). Then:
(a) the whole vocabulary stage, ``dw2v.build_vocab`` on a LocalCluster of ``--workers`` (its
    start included), over the Parquet shards and over the text file: seconds and input
    tokens/s;
(b) the whole ``dw2v.train`` over each (the cluster's start, the vocabulary stage and
    writing the model included): seconds, and training words/s (the rounds' words / their
    seconds);
(c) gensim ``Word2Vec(corpus_file=...)`` with ``--workers`` threads over the same text file:
    ``build_vocab`` seconds and ``train`` words/s (its own tokenizer: whitespace, so its
    vocabulary differs a little from dw2v's; gensim's figure is about speed).

Settings: skip-gram, dim 100, window 5, negative 5, min_count 5, sample 1e-3, ``--epochs``.

    python benchmarks/bench_text_input.py [--corpus DIR] [--workers 2] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"


def write_text(corpus: Path, out: Path) -> int:
    """The corpus's ``text`` column as lines (newlines inside a document become spaces)."""
    lines = 0
    with open(out, "w", encoding="utf-8") as handle:
        for path in sorted(corpus.glob("*.parquet")):
            for text in pq.read_table(path, columns=["text"])["text"].to_pylist():
                handle.write((text or "").replace("\r", " ").replace("\n", " ") + "\n")
                lines += 1
    return lines


def dw2v_vocab(inputs: list[str], out: Path, workers: int) -> dict[str, Any]:
    import dw2v

    started = time.perf_counter()
    report = dw2v.build_vocab(inputs, out, cluster=dw2v.ClusterConfig(
        n_workers=workers, dashboard_address=None), overwrite=True, progress=False)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": report.tokens, "kept": report.kept,
            "tokens_per_s": report.tokens / seconds}


def dw2v_train(inputs: list[str], out: Path, workers: int, epochs: int) -> dict[str, Any]:
    import dw2v

    config = dw2v.RunConfig(train=dw2v.TrainConfig(epochs=epochs),
                            cluster=dw2v.ClusterConfig(n_workers=workers,
                                                       dashboard_address=None))
    started = time.perf_counter()
    model = dw2v.train(inputs, out, config, overwrite=True, progress=False)
    wall = time.perf_counter() - started
    rounds = model.meta["rounds"]
    words = sum(r["words"] for r in rounds)
    return {"wall_s": wall, "words": words,
            "words_per_s": words / sum(r["seconds"] for r in rounds)}


def gensim_corpus_file(text: Path, workers: int, epochs: int) -> dict[str, Any]:
    from gensim.models import Word2Vec

    model = Word2Vec(sg=1, vector_size=100, window=5, negative=5, min_count=5, sample=1e-3,
                     workers=workers, epochs=epochs)
    started = time.perf_counter()
    model.build_vocab(corpus_file=str(text))
    vocab_s = time.perf_counter() - started
    started = time.perf_counter()
    model.train(corpus_file=str(text), total_words=model.corpus_total_words, epochs=epochs)
    train_s = time.perf_counter() - started
    words = model.corpus_total_words * epochs
    return {"vocab_s": vocab_s, "train_s": train_s, "words": words,
            "words_per_s": words / train_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dw2v-text-") as tmp:
        work = Path(tmp)
        text = work / "corpus.txt"
        lines = write_text(args.corpus, text)
        print(f"{args.corpus}: {lines:,} documents, {text.stat().st_size / 1e6:.1f} MB of text",
              flush=True)
        parquet_in, text_in = [str(args.corpus)], [str(text)]
        results: dict[str, Any] = {
            "vocab_parquet": dw2v_vocab(parquet_in, work / "vp", args.workers),
            "vocab_text": dw2v_vocab(text_in, work / "vt", args.workers),
            "train_parquet": dw2v_train(parquet_in, work / "tp", args.workers, args.epochs),
            "train_text": dw2v_train(text_in, work / "tt", args.workers, args.epochs),
            "gensim": gensim_corpus_file(text, args.workers, args.epochs),
        }
    r = results
    print(f"\nvocabulary stage ({args.workers} workers): Parquet {r['vocab_parquet']['seconds']:.1f}"
          f" s ({r['vocab_parquet']['tokens_per_s']:,.0f} tokens/s), text "
          f"{r['vocab_text']['seconds']:.1f} s ({r['vocab_text']['tokens_per_s']:,.0f} tokens/s)"
          f"; gensim build_vocab(corpus_file) {r['gensim']['vocab_s']:.1f} s")
    print(f"  same vocabulary: {r['vocab_parquet']['kept'] == r['vocab_text']['kept']} "
          f"({r['vocab_text']['kept']:,} words, {r['vocab_text']['tokens']:,} tokens)")
    print(f"whole train ({args.epochs} epochs): Parquet {r['train_parquet']['wall_s']:.1f} s "
          f"({r['train_parquet']['words_per_s']:,.0f} words/s), text "
          f"{r['train_text']['wall_s']:.1f} s ({r['train_text']['words_per_s']:,.0f} words/s); "
          f"gensim corpus_file, {args.workers} threads: {r['gensim']['train_s']:.1f} s "
          f"({r['gensim']['words_per_s']:,.0f} words/s)")
    print(f"ratios: text / Parquet vocabulary time "
          f"{r['vocab_text']['seconds'] / r['vocab_parquet']['seconds']:.2f}; dw2v text "
          f"training words/s / gensim corpus_file "
          f"{r['train_text']['words_per_s'] / r['gensim']['words_per_s']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
