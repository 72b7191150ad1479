"""Benchmark: dw2v on a GPU against dw2v on every CPU core and gensim on every core, in one run
on the same corpus, and dw2v on the GPU with skip-gram's per-pair kernel (against the batched
default); then dw2v on the GPU alone over a synthetic corpus large enough to keep it
busy (benchmarks/gpu_check.sh runs this on a lent GPU machine).

For each it prints and writes (``--out``, JSON):
- training words/s (the words of the rounds / their seconds; gensim: ``train()``'s), and the
  whole command's seconds (``dw2v.train``, vocabulary stage and cluster start-up included);
- quality: WordSim-353 Spearman and analogy accuracy by gensim's evaluators, as bench_train.py;
- for the GPU runs, words/s as a fraction of the memory-bandwidth bound: a skip-gram example
  (a pair) trained on its own reads and writes one input row and 1 + negative output rows
  (8 * dim * (negative + 2) bytes in float32), so at the device's measured copy bandwidth
  (bytes read + written per second, CuPy) it can train at most bandwidth / that examples a
  second, i.e. that times the run's words per example words a second. The default skip-gram
  kernel (HogBatch) reads each output row once per window instead of once per pair, so its
  share can pass 100 %: it is the per-pair bound, a yardstick rather than a ceiling.

Settings as bench_train.py: skip-gram, negative 5, window 5, dim 100, min_count 5, sample
1e-3, 5 epochs (the synthetic corpus: 1 epoch), alpha 0.025.

    python benchmarks/bench_gpu.py [--corpus DIR] [--eval DIR] [--synthetic-gb 0.3]
                                   [--out FILE] [--smoke]

``--smoke``: a tiny corpus, 1 epoch, dim 8, no gensim, for checking this script where there
is no GPU (under NUMBA_ENABLE_CUDASIM=1; the figures then mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_train import SETTINGS, _save, prepare, run_gensim  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def bandwidth() -> dict[str, Any]:
    """The device's copy bandwidth (bytes read + written per second) over 2 GiB, best of 5."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        a = np.ones(2**26, np.float32)
        b = np.empty_like(a)
        best = min(_timed(lambda: np.copyto(b, a)) for _ in range(5))
        return {"device": "host memory (the CUDA simulator)", "bytes_per_s": 2 * a.nbytes / best}
    import cupy

    a = cupy.ones(2**29, cupy.float32)
    b = cupy.empty_like(a)
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    times = []
    for _ in range(5):
        start.record()
        b[...] = a
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return {"device": name, "bytes_per_s": 2 * a.nbytes / min(times)}


def _timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run_dw2v(corpus: Path, out: Path, device: str, settings: dict[str, Any],
             shared_negatives: bool = True) -> dict[str, Any]:
    """The whole ``dw2v.train`` on its embedded cluster for ``device`` (the defaults: one
    worker per GPU, or per core); ``shared_negatives=False``: skip-gram's per-pair kernel."""
    import dw2v

    config = dw2v.RunConfig(
        vocab=dw2v.VocabConfig(min_count=settings["min_count"], sample=settings["sample"]),
        train=dw2v.TrainConfig(vector_size=settings["vector_size"], window=settings["window"],
                               negative=settings["negative"], epochs=settings["epochs"],
                               alpha=settings["alpha"], min_alpha=settings["min_alpha"],
                               device=device, seed=1, shared_negatives=shared_negatives),
        cluster=dw2v.ClusterConfig(dashboard_address=None))
    started = time.perf_counter()
    model = dw2v.train([str(corpus)], out, config, overwrite=True, progress=False)
    wall = time.perf_counter() - started
    rounds = model.meta["rounds"]
    words = sum(r["words"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    _save(out.with_name(out.name + "-vectors"), list(model.words), model.vectors)
    tool = f"dw2v {device}" + ("" if shared_negatives else " (negatives per pair)")
    return {"tool": tool, "words": words, "seconds": seconds,
            "words_per_s": words / seconds, "wall_s": wall,
            "words_per_example": words / max(sum(r["examples"] for r in rounds), 1),
            "workers": len(model.meta.get("devices", {})) or model.meta["workers"],
            "devices": sorted(set(model.meta.get("devices", {}).values()))}


def quality(vectors: Path, eval_dir: Path) -> dict[str, float]:
    from gensim.models import KeyedVectors

    words = json.loads(vectors.with_suffix(".words.json").read_text())
    kv = KeyedVectors(int(np.load(vectors.with_suffix(".npy"), mmap_mode="r").shape[1]))
    kv.add_vectors(words, np.load(vectors.with_suffix(".npy")))
    _, spearman, _ = kv.evaluate_word_pairs(str(eval_dir / "wordsim353.tsv"))
    accuracy, _ = kv.evaluate_word_analogies(str(eval_dir / "questions-words.txt"),
                                             restrict_vocab=30000)
    return {"spearman": float(spearman.statistic), "analogy": float(accuracy)}


def bound(result: dict[str, Any], settings: dict[str, Any], bw: float) -> float:
    """Words/s as a share of the memory-bandwidth bound (module docstring)."""
    per_example = 8 * settings["vector_size"] * (settings["negative"] + 2)
    return result["words_per_s"] / (bw / per_example * result["words_per_example"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--eval", type=Path, default=SHARED / "eval")
    parser.add_argument("--synthetic-gb", type=float, default=0.3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    settings = dict(SETTINGS)
    if args.smoke:
        settings.update(vector_size=8, epochs=1, min_count=1)
    cores = len(os.sched_getaffinity(0))
    report: dict[str, Any] = {"settings": settings, "cores": cores, "runs": []}
    bw = bandwidth()
    report["bandwidth"] = bw
    print(f"{bw['device']}: copy bandwidth {bw['bytes_per_s'] / 1e9:.0f} GB/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="dw2v-gpu-") as tmp:
        work = Path(tmp)
        corpus = args.corpus
        if args.smoke:
            from dw2v.testing import write_parquet

            rng = np.random.default_rng(0)
            corpus = work / "smoke"
            write_parquet(corpus / "part-0.parquet",
                          [" ".join(rng.choice([f"w{i}" for i in range(30)], 8))
                           for _ in range(40)])
        runs = [run_dw2v(corpus, work / "gpu", "gpu", settings)]
        if not args.smoke:
            runs.append(run_dw2v(corpus, work / "cpu", "cpu", settings))
            prepare(corpus, work / "gensim-work")
            gensim = run_gensim(work / "gensim-work", "skipgram", cores, 1,
                                work / "gensim-vectors")
            words = runs[0]["words"]  # the same corpus and epochs: the same words read
            runs.append({"tool": f"gensim ({cores} threads)", "words": words,
                         "seconds": gensim["seconds"], "words_per_s": words / gensim["seconds"],
                         "wall_s": None})
            runs.append(run_dw2v(corpus, work / "gpu-pairs", "gpu", settings,
                                 shared_negatives=False))
            for run, name in zip(runs, ("gpu-vectors", "cpu-vectors", "gensim-vectors",
                                        "gpu-pairs-vectors")):
                run.update(quality(work / name, args.eval))
        if args.synthetic_gb > 0 and not args.smoke:
            from make_corpus import make_corpus

            synthetic = work / "synthetic"
            made = make_corpus(synthetic, gigabytes=args.synthetic_gb, shards=16,
                               vocab_size=1_000_000, verbose=False)
            big = run_dw2v(synthetic, work / "synthetic-gpu", "gpu", {**settings, "epochs": 1})
            big["tool"] += f" (synthetic Zipf, {made['tokens']:,} tokens)"
            runs.append(big)
        for run in runs:
            if run["tool"].startswith("dw2v gpu"):
                run["bandwidth_share"] = bound(run, settings, bw["bytes_per_s"])
        report["runs"] = runs
    print(f"\n{'':44} {'words/s':>12} {'whole s':>8} {'WS-353':>7} {'analogy':>8} "
          f"{'of bw bound':>11}")
    for run in runs:
        print(f"{run['tool']:44} {run['words_per_s']:>12,.0f} "
              f"{run['wall_s'] or float('nan'):>8.1f} {run.get('spearman', float('nan')):>7.3f} "
              f"{run.get('analogy', float('nan')):>8.4f} "
              f"{run.get('bandwidth_share', float('nan')):>11.1%}")
    if len(runs) >= 3:
        print(f"\nGPU / CPU dw2v words/s: {runs[0]['words_per_s'] / runs[1]['words_per_s']:.2f}x; "
              f"GPU / gensim: {runs[0]['words_per_s'] / runs[2]['words_per_s']:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
