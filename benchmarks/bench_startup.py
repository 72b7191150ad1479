"""Benchmark: where the fixed cost of a small ``dw2v train`` run goes (issue 20's start-up).

Runs the README's main job (``dw2v train data/sample ...``, 1 epoch unless told) as a fresh
process, ``--runs`` times, with Numba's cache as it is (warm after the first run) and, with
``--cold``, once more on an empty cache (``NUMBA_CACHE_DIR`` set to a new directory). Reports
the whole command's wall time against the stages ``model.json`` records (cluster start,
vocabulary, encoding, training, writing the vectors), the kernels' warm-up (the driver's
"kernels are ready" line), and the interpreter's import of the driver (``python -X importtime
-c 'import dw2v.train'``); what is left is the process start, the report and the swap.

    python benchmarks/bench_startup.py [--corpus data/sample] [--epochs 1] [--runs 3] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def import_seconds(module: str) -> float:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, check=True)
    line = [x for x in done.stderr.splitlines() if x.rstrip().endswith(f"| {module}")][-1]
    return int(line.split("|")[1]) / 1e6


def run(corpus: Path, out: Path, epochs: int, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dw2v.cli", "train", str(corpus), "-o",
                           str(out), "--epochs", str(epochs), "--overwrite", "--no-dashboard",
                           "-v"], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - started
    meta = json.loads((out / "model.json").read_text())
    ready = re.search(r"kernels are ready on every worker, ([\d.]+) s", done.stderr)
    stages = meta["stages"]
    return {"wall_s": wall, **stages, "kernels_ready_s": float(ready.group(1)) if ready else 0.0,
            "other_s": wall - sum(stages.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "sample")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        runs = [("warm", dict(os.environ))] * args.runs
        if args.cold:
            runs.append(("cold", {**os.environ, "NUMBA_CACHE_DIR": str(Path(tmp) / "cache")}))
        for i, (cache, env) in enumerate(runs):
            row = run(args.corpus, Path(tmp) / f"m{i}", args.epochs, env)
            row["cache"] = cache
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nimport dw2v: {import_seconds('dw2v'):.2f} s; import dw2v.engine (Dask, Numba, "
          f"the kernels): {import_seconds('dw2v.engine'):.2f} s\n")
    keys = ["wall_s", "cluster start", "vocabulary", "encoding", "training", "kernels_ready_s",
            "writing vectors", "other_s"]
    print("| Numba cache | whole command | cluster start | vocabulary | encoding | training "
          "| of it, kernels' warm-up | writing vectors | the rest |")
    print("|---|" + "---|" * len(keys))
    for row in rows:
        print(f"| {row['cache']} | " + " | ".join(f"{row.get(k, 0.0):.2f} s" for k in keys)
              + " |")


if __name__ == "__main__":
    main()
