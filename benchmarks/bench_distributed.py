"""Benchmark: distributed training with parameter averaging, on one machine.

(a) scaling: ``dw2v train`` on a LocalCluster of 1 and of 2 single-threaded workers, training
    words/s (all workers' words / seconds of the rounds, vocabulary stage excluded);
(b) quality against the number of workers (1, 2, 4, 8; several per core is fine for quality)
    and the sync period (words per worker between averagings): WordSim-353 Spearman and
    Google-analogy accuracy (30,000 most frequent words) by gensim's evaluators, against one
    worker and against gensim ``Word2Vec`` (2 threads) trained in the same run;
(c) the share of the rounds' time spent outside the workers' training (1 - sum over rounds
    of the slowest worker's training seconds / the rounds' seconds: engine v2's exchange and
    the wait for the slowest worker), the slowest worker's exchange seconds as a share of the
    rounds' seconds, the share a worker spends waiting, its training done, for the slowest of
    its round (sum over rounds of the slowest's seconds - the workers' mean, / the rounds'
    seconds), and the bytes a worker sends per round;
(d) the whole command: ``dw2v.train``'s wall time, vocabulary stage and cluster start-up
    included, 2 workers against 1.

Settings as bench_train.py: skip-gram, negative=5, window=5, dim=100, min_count=5, sample=1e-3,
epochs=5, alpha=0.025, min_alpha=0.0001.

Each run is a fresh process; with several ``--seeds`` the table gives means over seeds and the
scaling ratio is taken per seed (the 1- and 2-worker runs of a seed run back to back: one
worker's speed on this shared machine moves by 10-20 % between runs).

    python benchmarks/bench_distributed.py [--corpus DIR] [--workers 1 2 4 8]
                                           [--sync auto 1000000 250000] [--seeds 1 2 3]
                                           [--speed-only] [--json PATH]

``--speed-only`` (for synthetic corpora from make_corpus.py, which have no word pairs or
analogies): no gensim and no evaluation, only throughput, the share outside training, and the
scaling ratio.
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

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_train import SETTINGS, evaluate, prepare, run_gensim  # noqa: E402


def run_dw2v(corpus: Path, out: Path, workers: int, sync_every: str, seed: int,
             quality: bool = True, *, overlap: bool = False,
             epochs: int = SETTINGS["epochs"]) -> dict[str, Any]:
    """One ``dw2v train`` on a fresh LocalCluster (as ``dw2v train`` makes it); figures from
    its model.json. ``overlap``: ``--overlap`` (bench_overlap.py)."""
    import dw2v
    from dw2v.cli import _sync_every as period_of  # "auto" or words, as --sync-every reads it
    from dw2v.dask_cluster import local_cluster

    sync_every, _, cold = sync_every.partition(":")  # "PERIOD:K": --cold-every K

    config = dw2v.RunConfig(
        vocab=dw2v.VocabConfig(min_count=SETTINGS["min_count"], sample=SETTINGS["sample"]),
        train=dw2v.TrainConfig(vector_size=SETTINGS["vector_size"], window=SETTINGS["window"],
                               negative=SETTINGS["negative"], epochs=epochs,
                               alpha=SETTINGS["alpha"], min_alpha=SETTINGS["min_alpha"],
                               sync_every=period_of(sync_every), seed=seed,
                               cold_every=int(cold or 1), overlap=overlap))
    with local_cluster(workers) as client:  # the embedded cluster's settings
        client.run(lambda: __import__("dw2v.kernels.cpu"))  # import the kernels' module first
        started = time.perf_counter()
        model = dw2v.train([str(corpus)], out / "model", config, client=client, overwrite=True)
        wall = time.perf_counter() - started
    rounds = model.meta["rounds"]
    seconds = sum(r["seconds"] for r in rounds)
    outside = 1.0 - sum(r["seconds_training"] for r in rounds) / seconds
    # a worker done before the slowest of its round waits: the mean such wait, as a share
    waiting = sum(max(r["worker_seconds"]) - float(np.mean(r["worker_seconds"]))
                  for r in rounds) / seconds
    exchange = sum(r.get("seconds_exchange", 0.0) for r in rounds) / seconds
    sent = float(np.mean([max(r.get("worker_bytes_sent") or [0]) for r in rounds]))
    scores: dict[str, float] = {}
    if quality:
        np.save(out / "vectors.npy", model.vectors)
        (out / "vectors.words.json").write_text(json.dumps(model.words))
        scores = evaluate(out / "vectors")
    return {"tool": "dw2v", "workers": workers,
            "sync_every": f"{sync_every}:{cold}" if cold else sync_every, "seed": seed,
            "period": model.meta["sync_every"],
            "rounds": len(rounds), "words": sum(r["words"] for r in rounds),
            "train_seconds": seconds, "wall_seconds": wall,
            "words_per_s": sum(r["words"] for r in rounds) / seconds,
            "outside_share": outside, "waiting_share": waiting, "exchange_share": exchange,
            "round_ms": 1000 * seconds / len(rounds),
            "training_ms": 1000 * float(np.mean([r["seconds_training"] for r in rounds])),
            "mb_sent_per_round": sent / 1e6,
            "vocab": len(model.words), "final_loss": rounds[-1]["loss"], **scores}


def child(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(json.dumps(run_dw2v(Path(args.corpus), out, args.n, args.s, args.seed,
                              quality=not args.speed_only)))


def measure(corpus: Path, work: Path, workers: int, sync_every: str, seed: int,
            speed_only: bool = False) -> dict[str, Any]:
    """A fresh process per run, so runs do not share compiled state or memory."""
    out = work / f"w{workers}-s{sync_every}-seed{seed}"
    done = subprocess.run([sys.executable, __file__, "--_child", "--corpus", str(corpus),
                           "--n", str(workers), "--s", str(sync_every), "--seed", str(seed),
                           "--out", str(out)] + (["--speed-only"] if speed_only else []),
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(results: list[dict[str, Any]], gensim: dict[str, Any]) -> str:
    """Means over seeds per (sync period, workers), against one worker and gensim; then the
    scaling ratio 2 workers / 1 worker per seed (runs alternate, so each pair shares the
    machine's state of the moment) with its mean and range."""
    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["sync_every"], r["workers"]), []).append(r)
    lines = ["| sync every | workers | seeds | rounds | words/s | whole command s | outside "
             "training | exchange | waiting | WS-353 | - 1 worker | - gensim | analogy | "
             "/ 1 worker | / gensim |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (sync_every, workers), rows in groups.items():
        base = groups.get((sync_every, 1)) or next(
            (rows for (_, w), rows in groups.items() if w == 1), None)
        ws, an = mean(rows, "spearman"), mean(rows, "analogy")
        vs_ws = f"{ws - mean(base, 'spearman'):+.3f}" if base else "-"
        vs_an = f"{an / mean(base, 'analogy'):.1%}" if base else "-"
        lines.append(f"| {_label(sync_every, rows)} | {workers} | {len(rows)} | "
                     f"{rows[0]['rounds']} | "
                     f"{mean(rows, 'words_per_s'):,.0f} | {mean(rows, 'wall_seconds'):.1f} | "
                     f"{mean(rows, 'outside_share'):.1%} | {mean(rows, 'exchange_share'):.1%} | "
                     f"{mean(rows, 'waiting_share'):.1%} | "
                     f"{ws:.3f} | {vs_ws} | {ws - gensim['spearman']:+.3f} | {an:.4f} | "
                     f"{vs_an} | {an / gensim['analogy']:.1%} |")
    return "\n".join(lines + scaling(results))


def _label(sync_every: str, rows: list[dict[str, Any]]) -> str:
    period, _, cold = sync_every.partition(":")
    text = f"{int(period):,}" if period != "auto" else f"auto ({rows[0]['period']:,})"
    return text + (f", cold rows every {cold}" if cold else "")


def scaling(results: list[dict[str, Any]]) -> list[str]:
    """2 workers / 1 worker words/s per seed, for each sync period: mean and range."""
    lines = []
    for sync_every in dict.fromkeys(r["sync_every"] for r in results):
        # one worker averages nothing: any of its runs of the seed is the baseline
        ones = {r["seed"]: r for r in results if r["workers"] == 1}
        twos = [r for r in results
                if (r["sync_every"], r["workers"]) == (sync_every, 2) and r["seed"] in ones]
        ratios = [r["words_per_s"] / ones[r["seed"]]["words_per_s"] for r in twos]
        walls = [ones[r["seed"]]["wall_seconds"] / r["wall_seconds"] for r in twos]
        if ratios:
            lines.append(f"scaling at sync {sync_every}: 2 workers / 1 worker = "
                         f"{np.mean(ratios):.2f}x training words/s (per seed "
                         f"{min(ratios):.2f}-{max(ratios):.2f}x, {len(ratios)} pairs; target "
                         f"1.8x); the whole command {np.mean(walls):.2f}x as fast")
    return lines


def speed_summary(results: list[dict[str, Any]]) -> str:
    """Without quality figures (``--speed-only``): each run's throughput, then scaling."""
    lines = ["| sync every | workers | seed | vocabulary | rounds | words | words/s | "
             "whole command s | outside training | exchange | waiting | MB sent/round |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {_label(r['sync_every'], [r])} | {r['workers']} | {r['seed']} | "
                     f"{r['vocab']:,} | {r['rounds']} | {r['words']:,} | "
                     f"{r['words_per_s']:,.0f} | {r['wall_seconds']:.1f} | "
                     f"{r['outside_share']:.1%} | {r['exchange_share']:.1%} | "
                     f"{r['waiting_share']:.1%} | {r['mb_sent_per_round']:.2f} |")
    return "\n".join(lines + scaling(results))


def run_all(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Every (period, seed, workers) run, each printed as it ends; the workers of a seed run one
    after the other, so a scaling pair shares the machine's state of the moment."""
    results = []
    for sync_every in args.sync:
        for seed in args.seeds:
            for workers in args.workers:
                if workers == 1 and any(r["workers"] == 1 and r["seed"] == seed
                                        for r in results):
                    continue  # one worker averages nothing: one run per seed is enough
                result = measure(args.corpus, work, workers, sync_every, seed,
                                 speed_only=args.speed_only)
                results.append(result)
                print(json.dumps(result), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, default=SHARED / "devcorpus")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--sync", nargs="+", default=["auto", "1000000", "250000"],
                        help="words per worker between averagings, or auto (the default); "
                             "PERIOD:K also averages the rows outside the hot ones every K "
                             "rounds (--cold-every K)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--speed-only", action="store_true",
                        help="throughput and scaling only: no gensim, no evaluation (for "
                             "synthetic corpora, which have no word pairs or analogies)")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--s", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(args)
        return
    if args.speed_only:
        with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
            results = run_all(args, Path(tmp))
        print(speed_summary(results))
        if args.json:
            args.json.write_text(json.dumps({"results": results}, indent=1))
        return
    with tempfile.TemporaryDirectory(prefix="bench-dist-") as tmp:
        work = Path(tmp)
        corpus = prepare(args.corpus, work)
        gensim = run_gensim(work, "skipgram", 2, 1, work / "gensim")
        gensim.update(evaluate(work / "gensim"), tool="gensim", workers="2 threads",
                      words_per_s=corpus["tokens"] * SETTINGS["epochs"] / gensim["seconds"])
        print(json.dumps(gensim), flush=True)
        results = run_all(args, work)
        print(f"\ngensim (2 threads): Spearman {gensim['spearman']:.3f}, analogy "
              f"{gensim['analogy']:.4f}, {gensim['words_per_s']:,.0f} words/s")
        print(summary(results, gensim))
        if args.json:
            args.json.write_text(json.dumps({"gensim": gensim, "results": results}, indent=1))


if __name__ == "__main__":
    main()
