"""Benchmark: a command's start-up and tail, line by line: each line it prints (stdout and
stderr together) stamped with the seconds since the command started, and the moment it exits.

RESULTS.md §22's breakdown of the whole ``dw2v train`` came from this (run with ``-vv`` so
that Dask's cluster start and close are logged):

    python benchmarks/bench_timeline.py -- python -m dw2v.cli train ../shared/data/devcorpus \\
        -o /tmp/cb1 --model cbow --epochs 5 --workers 1 --threads-per-worker 1 \\
        --no-dashboard --overwrite -vv

The seconds between the last line and "exit" are the interpreter's own end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grep", default="", help="show only lines containing this")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    started = time.perf_counter()
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert run.stdout is not None
    for line in run.stdout:
        if args.grep in line:
            print(f"{time.perf_counter() - started:7.2f} {line.rstrip()[:160]}", flush=True)
    code = run.wait()
    print(f"{time.perf_counter() - started:7.2f} exit {code}")


if __name__ == "__main__":
    main()
