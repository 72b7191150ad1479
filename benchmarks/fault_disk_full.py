"""Scripted fault: the disk fills while a checkpoint is written (a real, small tmpfs).

Mounts a tmpfs (needs root, or a directory already mounted with ``--mount``), runs
``dw2v train`` on the sample corpus with its model directory there, and once a checkpoint
exists fills the rest of the tmpfs with a file, as another process on a shared disk would.
It then checks that

1. the run stops with exit code 1 and a message that names the checkpoint kept;
2. that checkpoint is intact: ``latest.json`` points at it, its arrays load, have the model's
   shape and are finite, and no temporary files are left beside it;
3. with the filler removed, ``dw2v train --resume`` completes from it and the model loads.

    sudo python benchmarks/fault_disk_full.py [--size-mb 48]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"
TRAIN = ["--workers", "2", "--sync-every", "50000", "--epochs", "5", "--no-dashboard",
         "--seed", "3", "--checkpoint-every", "0"]


def fill(directory: Path) -> int:
    """Write zeros to ``directory/filler`` until the file system is full; bytes written."""
    written = 0
    block = b"\0" * 2**20
    with open(directory / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                written += handle.write(block)
        except OSError:
            pass
    return written


def latest(model: Path) -> dict | None:
    from dw2v.atomic import staging_dir

    try:
        return json.loads((staging_dir(model) / "checkpoints" / "latest.json").read_text())
    except (OSError, ValueError):
        return None


def check_checkpoint(model: Path) -> str:
    """The checkpoint ``latest.json`` names is complete and sane; return its name."""
    from dw2v.atomic import staging_dir
    from dw2v.merge import load_params

    pointer = latest(model)
    assert pointer is not None, "no latest.json"
    root = staging_dir(model) / "checkpoints"
    directory = root / pointer["checkpoint"]
    params = load_params(directory)  # the owners' parts, put back together
    w_in, w_out = params.W_in, params.W_out
    state = json.loads((directory / "state.json").read_text())
    assert w_in.shape == w_out.shape and w_in.dtype == np.float32, (w_in.shape, w_out.shape)
    assert np.isfinite(w_in).all() and np.isfinite(w_out).all()
    assert state["round"] == pointer["round"]
    leftovers = [p.name for p in root.iterdir() if ".tmp-" in p.name]
    assert not leftovers, f"temporary files left: {leftovers}"
    return f"{pointer['checkpoint']} ({w_in.shape[0]} x {w_in.shape[1]}, finite)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=48)
    parser.add_argument("--mount", type=Path, default=None,
                        help="use this (already mounted, empty) small file system instead")
    args = parser.parse_args()
    mount = args.mount or Path(tempfile.mkdtemp(prefix="dw2v-tmpfs-"))
    if args.mount is None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.size_mb}m", "tmpfs",
                        str(mount)], check=True)
    model = mount / "model"
    command = [sys.executable, "-m", "dw2v.cli", "train", str(SAMPLE), "-o", str(model), *TRAIN]
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        while (pointer := latest(model)) is None or pointer["round"] < 2:
            if proc.poll() is not None:
                raise SystemExit(f"the run ended before round 2:\n{proc.stdout.read()}")
            time.sleep(0.05)
        filled = fill(mount)
        print(f"round {pointer['round']} checkpointed; filled the last {filled / 2**20:.1f} MiB "
              f"of the {args.size_mb} MiB tmpfs")
        log, _ = proc.communicate()
        error = [line for line in log.splitlines() if "error" in line.lower()]
        print(f"1. exit code {proc.returncode}; message: {error[-1] if error else log[-500:]}")
        assert proc.returncode == 1, log[-3000:]
        print(f"2. the checkpoint kept: {check_checkpoint(model)}")
        os.remove(mount / "filler")
        started = time.perf_counter()
        done = subprocess.run([*command, "--resume"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        import dw2v
        embeddings = dw2v.load(model)
        meta = json.loads((model / "model.json").read_text())
        print(f"3. --resume completed in {time.perf_counter() - started:.0f} s: "
              f"{len(embeddings)} words, {len(meta['rounds'])} rounds recorded, neighbours of "
              f"'gold': {[w for w, _ in embeddings.most_similar('gold', topn=5)]}")
    finally:
        if args.mount is None:
            subprocess.run(["umount", str(mount)], check=False)
            os.rmdir(mount)


if __name__ == "__main__":
    main()
