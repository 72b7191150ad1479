"""Benchmark: dw2v's CPU training kernels against gensim 4 ``Word2Vec``, same tokens, same settings.

Both trainers get the same token lists: the corpus is tokenized once by dw2v (``dw2v vocab``:
lowercase, letters/digits with inner apostrophes); gensim receives those tokens row by row and
builds its own vocabulary with the same ``min_count`` (so both have the same words), dw2v trains
on the token-id shards it wrote. Settings are the same for both: negative=5, window=5,
vector_size=100, min_count=5, sample=1e-3, epochs=5, alpha=0.025, min_alpha=0.0001 (CBOW:
cbow_mean=1). Each run is a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own; the
timed part is training only (gensim ``train()``, dw2v ``train_shards`` over all epochs), after
a warm-up that compiles dw2v's kernels.

words/s = corpus tokens (all tokens the tokenizer produced, the same number for both) x epochs
/ training seconds. Quality: WordSim-353 Spearman and Google-analogy accuracy with the
vocabulary restricted to the 30,000 most frequent words, both computed by gensim's evaluators on
each model's input vectors.

    python benchmarks/bench_train.py [--corpus DIR] [--models skipgram cbow] [--threads 1 2]
                                     [--seeds 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
SETTINGS = dict(negative=5, window=5, vector_size=100, min_count=5, sample=1e-3, epochs=5,
                alpha=0.025, min_alpha=0.0001)


def prepare(corpus: Path, work: Path) -> dict[str, Any]:
    """Run dw2v's vocabulary stage, and write the same tokens as lists for gensim."""
    from distributed import Client, LocalCluster

    from dw2v.config import IngestConfig, VocabConfig
    from dw2v.ingest import check_shard, find_shards, iter_text
    from dw2v.prepare import build_vocab
    from dw2v.tokenize import tokenize

    ingest = IngestConfig()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        report = build_vocab([str(corpus)], work / "vocab", client=client,
                             vocab=VocabConfig(min_count=SETTINGS["min_count"],
                                               sample=SETTINGS["sample"]), overwrite=True)
    rows = []
    for index, url in enumerate(find_shards([str(corpus)], ingest)):
        for text in iter_text(check_shard(url, index, ingest), ingest):
            batch = tokenize(text, ingest.tokenizer)
            offsets = np.concatenate([[0], np.cumsum(batch.row_lengths())])
            rows.append(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), batch.tokens))
    pq.write_table(pa.table({"tokens": pa.concat_arrays(rows)}), work / "tokens.parquet")
    return {"tokens": report.tokens, "vocab": report.kept}


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_gensim(work: Path, model: str, threads: int, seed: int, out: Path) -> dict[str, Any]:
    """Train gensim on the token lists; save its vectors in our vocabulary's order."""
    from gensim.models import Word2Vec

    sentences = [s for s in pq.read_table(work / "tokens.parquet")["tokens"].to_pylist() if s]
    w2v = Word2Vec(sg=1 if model == "skipgram" else 0, cbow_mean=1, hs=0, workers=threads,
                   seed=seed, **{k: v for k, v in SETTINGS.items() if k != "epochs"})
    w2v.build_vocab(sentences)
    started = time.perf_counter()
    w2v.train(sentences, total_examples=w2v.corpus_count, epochs=SETTINGS["epochs"])
    seconds = time.perf_counter() - started
    _save(out, w2v.wv.index_to_key, w2v.wv.vectors)
    return {"seconds": seconds, "peak_rss_mib": _peak_rss_mib(), "vocab": len(w2v.wv)}


def run_dw2v(work: Path, model: str, threads: int, seed: int, out: Path,
             shared_negatives: bool = False, cbow_block: int = 1) -> dict[str, Any]:
    """Train dw2v on its token-id shards, all epochs in one ``train_shards`` call."""
    from dw2v.config import TrainConfig
    from dw2v.shard_train import SamplingTables, init_params, train_shards
    from dw2v.vocab import load

    vocab = load(work / "vocab")
    tables = SamplingTables.from_vocab(vocab)
    config = TrainConfig(model=model, vector_size=SETTINGS["vector_size"],
                         window=SETTINGS["window"], negative=SETTINGS["negative"],
                         threads=threads, seed=seed, shared_negatives=shared_negatives,
                         cbow_block=cbow_block)
    shards = sorted((work / "vocab" / "work").glob("shard-*"))
    params = init_params(len(vocab), config.vector_size, seed)
    train_shards(shards[:1], params, tables, config, lr_start=0.0, lr_end=0.0, seed=0)  # compile
    started = time.perf_counter()
    trained, counters = train_shards(shards, params, tables, config, lr_start=SETTINGS["alpha"],
                                     lr_end=SETTINGS["min_alpha"], seed=seed,
                                     epochs=SETTINGS["epochs"])
    seconds = time.perf_counter() - started
    _save(out, vocab.tokens.to_pylist(), trained.W_in)
    return {"seconds": seconds, "peak_rss_mib": _peak_rss_mib(), "vocab": len(vocab),
            "loss": counters.loss, "words_kept": counters.words_kept}


def _save(out: Path, words: list[str], vectors: np.ndarray) -> None:
    np.save(out.with_suffix(".npy"), np.asarray(vectors, dtype=np.float32))
    out.with_suffix(".words.json").write_text(json.dumps(list(words)))


def evaluate(out: Path) -> dict[str, float]:
    """WordSim-353 Spearman and analogy accuracy (30,000 most frequent words) with gensim."""
    from gensim.models import KeyedVectors

    words = json.loads(out.with_suffix(".words.json").read_text())
    vectors = np.load(out.with_suffix(".npy"))
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)
    pearson, spearman, oov = kv.evaluate_word_pairs(str(SHARED / "eval" / "wordsim353.tsv"))
    accuracy, _ = kv.evaluate_word_analogies(str(SHARED / "eval" / "questions-words.txt"),
                                             restrict_vocab=30000)
    return {"spearman": float(spearman.statistic), "analogy": float(accuracy),
            "oov": float(oov)}


def child(args: argparse.Namespace) -> None:
    work, out = Path(args.work), Path(args.out)
    if args.tool == "gensim":
        result = run_gensim(work, args.model, args.threads, args.seed, out)
    else:
        result = run_dw2v(work, args.model, args.threads, args.seed, out,
                          shared_negatives=args.tool != "dw2v-pairs",
                          cbow_block=4 if args.tool == "dw2v-cbow-block4" else 1)
    print(json.dumps(result))


def measure(work: Path, tool: str, model: str, threads: int, seed: int) -> dict[str, Any]:
    out = work / f"{tool}-{model}-t{threads}-s{seed}"
    done = subprocess.run([sys.executable, __file__, "--_child", tool, "--work", str(work),
                           "--model", model, "--threads", str(threads), "--seed", str(seed),
                           "--out", str(out)], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(evaluate(out), tool=tool, model=model, threads=threads, seed=seed)
    return result


def summary(results: list[dict[str, Any]]) -> str:
    """Means over seeds per (model, threads, tool), with the ratios the targets are about."""
    lines = ["| model | threads | tool | seeds | words/s | x gensim | peak RSS MiB | "
             "WS-353 Spearman | - gensim | analogy acc. | / gensim |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["model"], r["threads"], r["tool"]) for r in results},
                  key=lambda k: (k[0] != "skipgram", k[1], k[2] != "gensim", k[2]))
    mean = {}
    for key in keys:
        rows = [r for r in results if (r["model"], r["threads"], r["tool"]) == key]
        mean[key] = {m: float(np.mean([r[m] for r in rows])) for m in
                     ("words_per_s", "peak_rss_mib", "spearman", "analogy")}
        mean[key]["n"] = len(rows)
    for (model, threads, tool), m in mean.items():
        g = mean.get((model, threads, "gensim"))
        speed = m["words_per_s"] / g["words_per_s"] if g else float("nan")
        ds = m["spearman"] - g["spearman"] if g else float("nan")
        ra = m["analogy"] / g["analogy"] if g else float("nan")
        lines.append(f"| {model} | {threads} | {tool} | {m['n']} | {m['words_per_s']:,.0f} | "
                     f"{speed:.2f}x | {m['peak_rss_mib']:,.0f} | {m['spearman']:.3f} | "
                     f"{ds:+.3f} | {m['analogy']:.4f} | {ra:.1%} |")
    return "\n".join(lines)


def table(results: list[dict[str, Any]], tokens: int) -> str:
    lines = ["| model | threads | tool | words/s | ratio to gensim | peak RSS MiB | "
             "WS-353 Spearman | analogy acc. |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        r["words_per_s"] = tokens * SETTINGS["epochs"] / r["seconds"]
    for r in results:
        peer = [g for g in results if g["tool"] == "gensim" and g["model"] == r["model"]
                and g["threads"] == r["threads"] and g["seed"] == r["seed"]]
        ratio = r["words_per_s"] / peer[0]["words_per_s"] if peer else float("nan")
        r["ratio"] = ratio
        lines.append(f"| {r['model']} | {r['threads']} | {r['tool']} | "
                     f"{r['words_per_s']:,.0f} | {ratio:.2f}x | {r['peak_rss_mib']:,.0f} | "
                     f"{r['spearman']:.3f} | {r['analogy']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--models", nargs="+", default=["skipgram", "cbow"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--tools", nargs="+", default=["gensim", "dw2v", "dw2v-pairs",
                                                       "dw2v-cbow-block4"],
                        help="gensim; dw2v (default kernels: HogBatch for skip-gram); "
                             "dw2v-pairs (skip-gram with word2vec's per-pair negatives); "
                             "dw2v-cbow-block4 (CBOW, --cbow-block 4)")
    parser.add_argument("--work", type=Path, default=None, help="keep intermediate files here")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--_child", dest="tool", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tool:
        args.threads = args.threads[0]
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        corpus = prepare(args.corpus, work)
        print(f"corpus {args.corpus}: {corpus['tokens']:,} tokens, vocabulary "
              f"{corpus['vocab']:,}; settings {SETTINGS}", flush=True)
        results = []
        for model in args.models:
            for threads in args.threads:
                for seed in args.seeds:
                    for tool in args.tools:
                        if (tool == "dw2v-pairs" and model != "skipgram") or \
                                (tool == "dw2v-cbow-block4" and model != "cbow"):
                            continue
                        result = measure(work, tool, model, threads, seed)
                        results.append(result)
                        print(json.dumps(result), flush=True)
        print(table(results, corpus["tokens"]))
        print()
        print(summary(results))
        if args.json:
            args.json.write_text(json.dumps({"corpus": corpus, "settings": SETTINGS,
                                             "results": results}, indent=1))


if __name__ == "__main__":
    main()
