"""Benchmark: counting under a flood of distinct tokens stays within ``--max-vocab-size``.

Writes a corpus in which every token is a different string (``u`` + the token's number:
N tokens, N distinct words, 100 per document, 8 shards), then runs ``dw2v vocab`` on it with
each budget on distinct words, reading the peak resident memory of the driver and each
worker (the kernel's ``VmHWM``, read every 0.2 s until the process ends). The peak should follow the budget, not the number of distinct words.

    python benchmarks/bench_flood.py --distinct 30000000 100000000 300000000 \
        --max-vocab-size 250000 1000000
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

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import high_water_mark  # noqa: E402

TOKENS_PER_DOC = 100
CHUNK = 4_000_000  # tokens per row group


def write_flood(out: Path, distinct: int, shards: int = 8) -> int:
    """``distinct`` tokens, all different, in ``shards`` Parquet files; returns text bytes."""
    out.mkdir(parents=True)
    per_shard = -(-distinct // shards)
    text_bytes = 0
    for s in range(shards):
        lo, hi = s * per_shard, min((s + 1) * per_shard, distinct)
        with pq.ParquetWriter(out / f"flood-{s:03d}.parquet",
                              pa.schema([("text", pa.string())])) as writer:
            for a in range(lo, hi, CHUNK):
                ids = np.arange(a, min(a + CHUNK, hi), dtype=np.int64)
                words = pc.binary_join_element_wise("u", pc.cast(pa.array(ids), pa.string()),
                                                    "")
                offsets = np.arange(0, len(ids) + TOKENS_PER_DOC, TOKENS_PER_DOC)
                offsets[-1] = min(offsets[-1], len(ids))
                offsets = np.unique(offsets)
                docs = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()),
                                                               words), " ")
                text_bytes += pc.sum(pc.binary_length(docs)).as_py()
                writer.write_table(pa.table({"text": docs}))
    return text_bytes


def measure(corpus: Path, out: Path, budget: int, workers: int) -> dict:
    cmd = [sys.executable, "-m", "dw2v.cli", "vocab", str(corpus), "-o", str(out),
           "--max-vocab-size", str(budget), "--min-count", "1", "--workers", str(workers),
           "--no-dashboard", "--overwrite"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(proc.pid)
    peaks: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            for p in procs:
                try:
                    peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss,
                                       high_water_mark(p.pid))
                except psutil.Error:
                    pass

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    log, _ = proc.communicate()
    stop.set()
    thread.join()
    if proc.returncode:
        raise RuntimeError(log[-3000:])
    report = json.loads((out / "vocab_report.json").read_text())
    driver = peaks.pop(proc.pid, 0)
    others = sorted(peaks.values(), reverse=True)
    return {"seconds": time.perf_counter() - started, "tokens": report["tokens"],
            "kept": report["kept"], "budget": budget,
            "peak_rss_driver_mib": driver / 2**20,
            "peak_rss_largest_worker_mib": (others[0] if others else 0) / 2**20,
            "peak_rss_sum_mib": (driver + sum(others)) / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--distinct", nargs="+", type=int, default=[10_000_000, 100_000_000])
    parser.add_argument("--max-vocab-size", nargs="+", type=int, default=[1_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    for distinct in args.distinct:
        with tempfile.TemporaryDirectory(prefix="flood-", dir=args.work) as tmp:
            corpus = Path(tmp) / "corpus"
            t = time.perf_counter()
            text = write_flood(corpus, distinct)
            print(f"wrote {distinct:,} distinct tokens ({text / 1e9:.2f} GB of text) in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
            for budget in args.max_vocab_size:
                row = {"distinct": distinct, "text_gb": text / 1e9,
                       **measure(corpus, Path(tmp) / "out", budget, args.workers)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            shutil.rmtree(corpus)
    print("\n| distinct tokens | text GB | --max-vocab-size | kept | seconds | peak RSS driver "
          "MiB | peak RSS largest worker MiB | peak RSS all MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['distinct']:,} | {r['text_gb']:.2f} | {r['budget']:,} | {r['kept']:,} | "
              f"{r['seconds']:.0f} | {r['peak_rss_driver_mib']:,.0f} | "
              f"{r['peak_rss_largest_worker_mib']:,.0f} | {r['peak_rss_sum_mib']:,.0f} |")


if __name__ == "__main__":
    main()
