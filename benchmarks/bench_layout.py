"""Benchmark: how the embedded LocalCluster should use one machine's C cores, in one run on the
same corpus: C single-threaded workers averaging their replicas, against one worker training
in C Hogwild threads, against gensim with C threads.

For each model (skip-gram, CBOW) and seed, fresh processes, one after the other:
(a) ``dw2v train CORPUS --workers C --threads-per-worker 1``;
(b) ``dw2v train CORPUS --workers 1 --threads-per-worker C``;
(c) gensim ``Word2Vec(corpus_file=...)`` with ``workers=C`` (once per model, its seed 1).
Each timed whole (bench_threads.py's ``run_dw2v`` and ``run_gensim``); training words/s;
WordSim-353 Spearman and Google-analogy accuracy over the 30,000 most frequent words.

    python benchmarks/bench_layout.py [--corpus DIR] [--cores 2] [--seeds 1 2 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_text_input import write_text  # noqa: E402
from bench_threads import SHARED, run_dw2v, run_gensim  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["skipgram", "cbow"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    layouts = {f"{args.cores} workers x 1 thread": (args.cores, 1),
               f"1 worker x {args.cores} threads": (1, args.cores)}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-layout-") as tmp:
        work = Path(tmp)
        text = work / "corpus.txt"
        write_text(args.corpus, text)
        for model in args.models:
            for seed in args.seeds:
                for name, (workers, threads) in layouts.items():
                    r = run_dw2v(args.corpus, work / f"{model}-{workers}", model, threads,
                                 args.epochs, None, workers=workers, seed=seed)
                    r.update(model=model, layout=name, seed=seed)
                    results.append(r)
                    print(json.dumps(r), flush=True)
            r = run_gensim(text, work / f"{model}.bin", model, args.cores, args.epochs)
            r.update(model=model, layout=f"gensim, {args.cores} threads", seed=1)
            results.append(r)
            print(json.dumps(r), flush=True)
    print("\n| model | layout | seeds | whole command (mean) | gensim's / this | training words/s "
          "| WS-353 | analogy | analogy / gensim's |\n|---|---|---|---|---|---|---|---|---|")
    for model in args.models:
        rows = [r for r in results if r["model"] == model]
        gensim = rows[-1]
        for layout in dict.fromkeys(r["layout"] for r in rows):
            mine = [r for r in rows if r["layout"] == layout]
            wall = statistics.mean(r.get("whole_s", r["wall_s"]) for r in mine)
            analogy = statistics.mean(r["analogy"] for r in mine)
            print(f"| {model} | {layout} | {len(mine)} | {wall:.1f} s | "
                  f"{gensim['whole_s'] / wall:.2f}x | "
                  f"{statistics.mean(r['words_per_s'] for r in mine):,.0f} | "
                  f"{statistics.mean(r['wordsim'] for r in mine):.3f} | {analogy:.4f} | "
                  f"{analogy / gensim['analogy']:.1%} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
