"""A real ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, started here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from distributed import Client

from dw2v.cli import main
from dw2v.prepare import build_vocab
from dw2v.testing import dask_processes
from dw2v.token_shards import read_token_shard
from dw2v.vocab import load

pytestmark = pytest.mark.cluster


def test_vocab_on_scheduler_and_worker_processes_equals_local(
        sample_dir: Path, tmp_path: Path, client1: Client,
        capsys: pytest.CaptureFixture[str]) -> None:
    build_vocab([str(sample_dir)], tmp_path / "local", client=client1)
    with dask_processes(tmp_path / "dask", n_workers=2) as (address, scheduler_file, workers):
        assert all(w.poll() is None for w in workers)
        code = main(["vocab", str(sample_dir), "-o", str(tmp_path / "remote"),
                     "--scheduler-file", str(scheduler_file)])
        out = capsys.readouterr().out
        assert code == 0
        assert "on 2 workers" in out
        code = main(["vocab", str(sample_dir), "-o", str(tmp_path / "by-address"),
                     "--scheduler", address])
        assert code == 0
    assert all(w.poll() is not None for w in workers)  # stopped
    local = load(tmp_path / "local")
    for name in ("remote", "by-address"):
        remote = load(tmp_path / name)
        assert remote.tokens.equals(local.tokens)
        np.testing.assert_array_equal(remote.counts, local.counts)
        for shard in sorted((tmp_path / "local" / "work").glob("shard-*")):
            other = read_token_shard(tmp_path / name / "work" / shard.name)
            np.testing.assert_array_equal(read_token_shard(shard).ids, other.ids)
