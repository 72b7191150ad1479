"""Benchmark: ``dw2v train`` end to end on large synthetic corpora, in bounded memory.

For each corpus, one ``dw2v train`` command (``dw2v vocab`` with ``--vocab-only``: a fresh
process; the embedded LocalCluster of ``--workers`` single-threaded workers) while this
script samples, every 0.1 s, the resident memory of the driver and of every worker process
(psutil), and reads each one's exact peak (the kernel's ``VmHWM``, which sampling can miss:
the reported peak) and the disk used by the model directory's work area. Reports wall time
per stage (vocabulary and encoding from ``vocab_report.json``, training from ``model.json``),
training words/s, and the peak figures; then compares the peaks across corpora (the target:
within 10 % when the vocabulary and model size are the same).

    python benchmarks/make_corpus.py benchmarks/_data/zipf-0.5g --gigabytes 0.5 --shards 8 --plant 1000
    python benchmarks/make_corpus.py benchmarks/_data/zipf-3g --gigabytes 3 --shards 48 --plant 1000
    python benchmarks/bench_scale.py benchmarks/_data/zipf-0.5g benchmarks/_data/zipf-3g \\
        -- --epochs 1 --max-final-vocab 100000 --sync-every 4000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil


def _tree_rss(root: psutil.Process) -> dict[str, int]:
    """RSS of the driver and of each worker process below it (by role and pid)."""
    out = {}
    try:
        out["driver"] = root.memory_info().rss
        for child in root.children(recursive=True):
            try:
                cmd = " ".join(child.cmdline())
                if "resource_tracker" in cmd:
                    continue
                role = "worker" if "multiprocessing" in cmd or "spawn" in cmd else "other"
                out[f"{role}-{child.pid}"] = child.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return out


def high_water_mark(pid: int) -> int:
    """The kernel's exact peak RSS of a process (``VmHWM``, Linux; 0 elsewhere), which
    sampling can miss."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _du(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_size
        except OSError:
            pass
    return total


def run(corpus: Path, extra: list[str], workers: int, work: Path,
        vocab_only: bool = False) -> dict[str, Any]:
    out = work / f"model-{corpus.name}"
    job = ["vocab"] if vocab_only else ["train", "--neighbours", "w1"]
    cmd = [sys.executable, "-m", "dw2v.cli", job[0], str(corpus), "-o", str(out),
           "--workers", str(workers), "--threads-per-worker", "1", "--no-dashboard",
           "--overwrite", *job[1:], *extra]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(proc.pid)
    peaks: dict[str, int] = {}
    disk = {"work_peak": 0, "model_dir_peak": 0}
    series: list[dict[str, Any]] = []
    stop = threading.Event()

    stage_peaks: dict[str, dict[str, int]] = {"vocab": {}, "train": {}}
    exact: dict[str, int] = {}  # VmHWM, read until the process ends

    def sample() -> None:
        ticks = 0
        while not stop.wait(0.1):
            rss_now = _tree_rss(root)
            # the vocabulary stage ends when its report appears in the model directory
            stage = stage_peaks["train" if not vocab_only and (
                out / "vocab_report.json").exists() else "vocab"]
            for key, rss in rss_now.items():
                peaks[key] = max(peaks.get(key, 0), rss)
                stage[key] = max(stage.get(key, 0), rss)
                hwm = high_water_mark(root.pid if key == "driver" else int(key.split("-")[1]))
                if hwm:
                    exact[key] = max(exact.get(key, 0), hwm)
            ticks += 1
            if ticks % 50 == 0:  # every 5 s: the curve, to see which stage holds the peak
                series.append({"t": round(time.perf_counter() - started, 1),
                               **{k: round(v / 2**20) for k, v in rss_now.items()}})
            if ticks % 5 == 0:  # disk use every 0.5 s, in place or while staged
                for where in (out, out.parent / f".{out.name}.dw2v-partial"):
                    if where.exists():
                        disk["model_dir_peak"] = max(disk["model_dir_peak"], _du(where))
                        disk["work_peak"] = max(disk["work_peak"], _du(where / "work"))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    log, _ = proc.communicate()
    stop.set()
    thread.join()
    wall = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{cmd}: exit {proc.returncode}\n{log[-3000:]}")
    report = json.loads((out / "vocab_report.json").read_text())
    model = (json.loads((out / "model.json").read_text()) if not vocab_only else
             {"rounds": [], "vocab_size": report["kept"], "vector_size": 0})
    rounds = model["rounds"]
    train_seconds = sum(r["seconds"] for r in rounds)
    words = sum(r["words"] for r in rounds)
    sampled_workers = [v for k, v in peaks.items() if k.startswith("worker")]
    sampled_driver = peaks.get("driver", 0)
    if exact:  # the kernel's high-water marks: the true peaks
        peaks = {k: max(v, peaks.get(k, 0)) for k, v in exact.items()}
    workers_rss = [v for k, v in peaks.items() if k.startswith("worker")]
    result = {
        "corpus": corpus.name,
        "parquet_bytes": sum(p.stat().st_size for p in corpus.glob("*.parquet")),
        "tokens": report.get("tokens"), "vocab": model["vocab_size"], "dim": model["vector_size"],
        "wall_s": wall, "vocab_s": report.get("seconds_total"),
        "encode_s": report.get("seconds_encode"), "train_s": train_seconds, "rounds": len(rounds),
        "words": words, "words_per_s": words / train_seconds if train_seconds else 0.0,
        "peak_rss_driver_mib": peaks.get("driver", 0) / 2**20,
        "peak_rss_workers_mib": [v / 2**20 for v in sorted(workers_rss, reverse=True)],
        "peak_rss_other_mib": sum(v for k, v in peaks.items() if k.startswith("other")) / 2**20,
        "peak_rss_from": "VmHWM" if exact else "sampled",
        "sampled_peak_rss_driver_mib": sampled_driver / 2**20,
        "sampled_peak_rss_workers_mib": [v / 2**20 for v in sorted(sampled_workers, reverse=True)],
        "peak_rss_by_stage_mib": {name: {k: round(v / 2**20) for k, v in stage.items()}
                                  for name, stage in stage_peaks.items()},
        "work_dir_peak_mib": disk["work_peak"] / 2**20,
        "model_dir_peak_mib": disk["model_dir_peak"] / 2**20,
        "final_loss": rounds[-1]["loss"] if rounds else None,
        "rss_series_mib": series,
    }
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpora", nargs="+", type=Path)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None,
                        help="where the models go while they run (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--vocab-only", action="store_true",
                        help="run `dw2v vocab` (counting and encoding) instead of `dw2v train`")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    extra = argv[cut + 1:]  # what follows -- goes to dw2v train
    with tempfile.TemporaryDirectory(prefix="bench-scale-", dir=args.work) as tmp:
        results = []
        for corpus in args.corpora:
            result = run(corpus, extra, args.workers, Path(tmp), args.vocab_only)
            results.append(result)
            print(json.dumps(result), flush=True)
    print("\n| corpus | Parquet GB | tokens | vocab x dim | vocab+encode s | train s | words/s | "
          "peak RSS driver MiB | peak RSS workers MiB | work dir MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['corpus']} | {r['parquet_bytes'] / 1e9:.2f} | {r['tokens']:,} | "
              f"{r['vocab']:,} x {r['dim']} | {r['vocab_s']:.0f} | {r['train_s']:.0f} | "
              f"{r['words_per_s']:,.0f} | {r['peak_rss_driver_mib']:,.0f} | "
              f"{' / '.join(f'{v:,.0f}' for v in r['peak_rss_workers_mib'])} | "
              f"{r['work_dir_peak_mib']:,.0f} |")
    if len(results) > 1:
        small, large = results[0], results[-1]
        for key in ("peak_rss_driver_mib",):
            print(f"{key}: {large[key] / small[key]:.3f}x from {small['corpus']} to {large['corpus']}")
        print(f"peak RSS of the largest worker: "
              f"{max(large['peak_rss_workers_mib']) / max(small['peak_rss_workers_mib']):.3f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
