"""Benchmark: one worker of T threads, the whole ``dw2v train`` command against gensim with T
threads, and what the thread knob changes (issue 20), in one run on the same corpus.

For each model (skip-gram, CBOW):
(a) ``dw2v train CORPUS --workers 1 --threads-per-worker T`` at its defaults (the kernel uses
    the worker's T threads; the dashboard on, as a user gets it), a fresh process, timed whole
    from outside (interpreter start, imports, cluster start, vocabulary, training, writing
    the model and its report);
(b) the same with ``--kernel-threads 1`` (the old default, one kernel thread whatever the
    worker has);
(c) gensim ``Word2Vec(corpus_file=...)`` with ``workers=T`` over the same text (written once
    as lines), a fresh process: ``build_vocab`` then ``train``, then the vectors saved (its
    own whitespace tokenizer), timed whole from outside like dw2v (``whole_s``, which the
    ratio uses) and, as before Dec 4, from after its import inside the process (``wall_s``:
    0.7-0.8 s less, its interpreter start and ``import gensim``).
Training words/s: dw2v's rounds' words over their seconds; gensim's corpus words x epochs over
``train``'s seconds. Quality: WordSim-353 Spearman and Google-analogy accuracy over the 30,000
most frequent words, dw2v's evaluator (gensim's rules) on each model's vectors.

    python benchmarks/bench_threads.py [--corpus DIR] [--threads 2] [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_text_input import write_text  # noqa: E402

GENSIM = """
import json, sys, time
from gensim.models import Word2Vec
text, model, threads, epochs, out = sys.argv[1:6]
started = time.perf_counter()
w2v = Word2Vec(sg=int(model == "skipgram"), cbow_mean=1, vector_size=100, window=5, negative=5,
               min_count=5, sample=1e-3, workers=int(threads), epochs=int(epochs))
w2v.build_vocab(corpus_file=text)
trained = time.perf_counter()
w2v.train(corpus_file=text, total_words=w2v.corpus_total_words, epochs=int(epochs))
done = time.perf_counter()
w2v.wv.save_word2vec_format(out, binary=True)
print(json.dumps({"wall_s": time.perf_counter() - started, "train_s": done - trained,
                  "words_per_s": w2v.corpus_total_words * int(epochs) / (done - trained)}))
"""


def quality(path: Path) -> dict[str, float]:
    import dw2v
    from dw2v.errors import InputError

    emb = dw2v.load(path)
    out = {"wordsim": float("nan"), "analogy": float("nan")}  # a synthetic corpus has neither
    try:
        out["wordsim"] = emb.evaluate_similarity(SHARED / "eval" / "wordsim353.tsv",
                                                 30_000).spearman
        out["analogy"] = emb.evaluate_analogies(SHARED / "eval" / "questions-words.txt",
                                                30_000).accuracy
    except InputError:  # no pair or question in the vocabulary
        pass
    return out


def run_dw2v(corpus: Path, out: Path, model: str, threads: int | None, epochs: int,
             kernel_threads: int | None, *, workers: int | None = 1,
             seed: int | None = None) -> dict[str, Any]:
    """The whole ``dw2v train`` command in a fresh process (``workers``/``threads`` None:
    the cluster's default), timed; its training words/s and quality."""
    command = [sys.executable, "-m", "dw2v.cli", "train", str(corpus), "-o", str(out),
               "--model", model, "--epochs", str(epochs), "--overwrite"]
    if workers is not None:
        command += ["--workers", str(workers)]
    if threads is not None:
        command += ["--threads-per-worker", str(threads)]
    if kernel_threads is not None:
        command += ["--kernel-threads", str(kernel_threads)]
    if seed is not None:
        command += ["--seed", str(seed)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    meta = json.loads((out / "model.json").read_text())
    rounds = meta["rounds"]
    return {"wall_s": wall, "words_per_s": sum(r["words"] for r in rounds)
            / sum(r["seconds"] for r in rounds),
            "kernel_threads": sorted({t for r in rounds for t in r["worker_threads"]}),
            **quality(out)}


def run_gensim(text: Path, out: Path, model: str, threads: int, epochs: int) -> dict[str, Any]:
    """gensim in a fresh process: ``whole_s`` timed from outside (as ``run_dw2v`` times dw2v),
    ``wall_s`` from after its import, inside; its training words/s and quality."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", GENSIM, str(text), model, str(threads),
                           str(epochs), str(out)], check=True, capture_output=True, text=True)
    whole = time.perf_counter() - started
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "whole_s": whole,
            **quality(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["skipgram", "cbow"])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        work = Path(tmp)
        text = work / "corpus.txt"
        write_text(args.corpus, text)
        for model in args.models:
            runs = {"dw2v (kernel threads: the worker's)": run_dw2v(
                        args.corpus, work / f"{model}-knob", model, args.threads, args.epochs,
                        None),
                    "dw2v --kernel-threads 1": run_dw2v(
                        args.corpus, work / f"{model}-one", model, args.threads, args.epochs,
                        1),
                    "gensim": run_gensim(text, work / f"{model}.bin", model, args.threads,
                                         args.epochs)}
            gensim = runs["gensim"]
            for tool, r in runs.items():
                r.update(model=model, tool=tool, threads=args.threads,
                         x_gensim=r["words_per_s"] / gensim["words_per_s"],
                         wall_x_gensim=gensim["whole_s"] / r["wall_s"],
                         wall_x_gensim_after_import=gensim["wall_s"] / r["wall_s"])
                results.append(r)
                print(json.dumps(r), flush=True)
    print(f"\n| model | {args.threads} threads | training words/s | x gensim | whole command "
          "| gensim's / this | (gensim after its import) | WS-353 | analogy |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for r in results:
        whole = r.get("whole_s", r["wall_s"])
        print(f"| {r['model']} | {r['tool']} | {r['words_per_s']:,.0f} | {r['x_gensim']:.2f}x | "
              f"{whole:.2f} s | {r['wall_x_gensim']:.2f}x | "
              f"{r['wall_x_gensim_after_import']:.2f}x | {r['wordsim']:.3f} | "
              f"{r['analogy']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
