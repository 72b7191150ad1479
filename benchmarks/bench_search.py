"""Benchmark: nearest-neighbour search and export, on a trained model and on random vectors.

(a) ``most_similar`` latency (one query at a time, k=10): exact (one matrix-vector product) and
    through each ANN backend (hnswlib, FAISS HNSW, usearch), with the backends' build time and
    recall@10 against exact search; on a trained model and on N x 300 random unit vectors
    (default 1,000,000; the worst case for an index: no structure);
(b) export throughput per format (vectors/s and MB/s) on the trained model.

    python benchmarks/bench_search.py --model MODEL_DIR [--random 1000000] [--backends ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import dw2v
from dw2v.embeddings import Embeddings
from dw2v.export import FORMATS, export
from dw2v.search import BACKENDS, AnnIndex

QUERIES = 1000


def _latency(fn: Any, queries: np.ndarray) -> float:
    started = time.perf_counter()
    for q in queries:
        fn(q)
    return (time.perf_counter() - started) / len(queries) * 1e3


def measure(emb: Embeddings, name: str, backends: list[str]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    picks = rng.choice(len(emb), min(QUERIES, len(emb)), replace=False)
    queries = emb.unit[picks]
    exact_ms = _latency(lambda q: emb.most_similar(q, topn=10), queries)
    exact = np.stack([np.argpartition(-(emb.unit @ q), 10)[:10] for q in queries[:200]])
    rows = [{"data": name, "vectors": len(emb), "dim": emb.vectors.shape[1], "method": "exact",
             "build_s": 0.0, "query_ms": exact_ms, "recall@10": 1.0}]
    print(json.dumps(rows[-1]), flush=True)
    for backend in backends:
        index = AnnIndex.build(emb, backend)
        ms = _latency(lambda q, index=index: emb.most_similar(q, topn=10, index=index), queries)
        found, _ = index.query(queries[:200], 10)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)]))
        rows.append({"data": name, "vectors": len(emb), "dim": emb.vectors.shape[1],
                     "method": backend, "build_s": index.seconds_build, "query_ms": ms,
                     "recall@10": recall})
        print(json.dumps(rows[-1]), flush=True)
        del index
    return rows


def export_speed(emb: Embeddings) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            path = Path(tmp) / f"v.{fmt}"
            started = time.perf_counter()
            files = export(emb, path, fmt, overwrite=True)
            seconds = time.perf_counter() - started
            size = sum(f.stat().st_size for f in files)
            rows.append({"format": fmt, "vectors": len(emb), "seconds": seconds,
                         "vectors_per_s": len(emb) / seconds, "MB_per_s": size / seconds / 1e6,
                         "MB": size / 1e6})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--random", type=int, default=1_000_000)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS))
    parser.add_argument("--random-backends", nargs="+", default=None,
                        help="backends for the random set (default: --backends)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = dw2v.load(args.model)
    results = {"trained": measure(model, f"trained ({args.model.name})", args.backends),
               "export": export_speed(model)}
    if args.random:
        rng = np.random.default_rng(1)
        vectors = rng.standard_normal((args.random, 300), dtype=np.float32)
        emb = Embeddings([f"r{i}" for i in range(args.random)], vectors,
                         np.zeros(args.random, np.int64))
        results["random"] = measure(emb, f"random {args.random:,} x 300",
                                    args.random_backends or args.backends)
    print("\n| data | vectors x dim | method | build s | query ms | recall@10 |")
    print("|---|---|---|---|---|---|")
    for row in results["trained"] + results.get("random", []):
        print(f"| {row['data']} | {row['vectors']:,} x {row['dim']} | {row['method']} | "
              f"{row['build_s']:.1f} | {row['query_ms']:.3f} | {row['recall@10']:.3f} |")
    print("\n| format | vectors | seconds | vectors/s | MB/s | MB |")
    print("|---|---|---|---|---|---|")
    for row in results["export"]:
        print(f"| {row['format']} | {row['vectors']:,} | {row['seconds']:.2f} | "
              f"{row['vectors_per_s']:,.0f} | {row['MB_per_s']:.0f} | {row['MB']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
