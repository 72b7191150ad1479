"""Token-id shards: streamed .npy files that np.load reads, written whole or not at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dw2v.token_shards import NpyAppender, TokenShardWriter, read_token_shard


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_npy_appender_writes_a_file_numpy_reads(tmp_path: Path, dtype: type) -> None:
    path = tmp_path / "a.npy"
    writer = NpyAppender(path, dtype)
    chunks = [np.arange(5), np.arange(0), np.arange(10**6, 10**6 + 7)]
    for chunk in chunks:
        writer.append(chunk)
    writer.close()
    expected = np.concatenate(chunks).astype(dtype)
    np.testing.assert_array_equal(np.load(path), expected)
    loaded = np.load(path, mmap_mode="r")
    assert loaded.dtype == dtype and loaded.shape == expected.shape


def test_writer_concatenates_batches_and_shifts_offsets(tmp_path: Path) -> None:
    target = tmp_path / "shard-00000"
    with TokenShardWriter(target, meta={"source": "x.parquet"}) as writer:
        writer.append(np.array([1, 2, 3], np.int32), np.array([0, 2, 3]))
        writer.append(np.array([], np.int32), np.array([0]))
        writer.append(np.array([4, 5], np.int32), np.array([0, 2]))
    shard = read_token_shard(target)
    assert shard.ids.tolist() == [1, 2, 3, 4, 5]
    assert shard.offsets.tolist() == [0, 2, 3, 5]
    assert shard.n_sentences == 3
    assert shard.meta == {"source": "x.parquet", "tokens": 5, "sentences": 3}
    assert [p.name for p in tmp_path.iterdir()] == ["shard-00000"]  # no temporary left


def test_an_error_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "shard-00001"
    with pytest.raises(RuntimeError):
        with TokenShardWriter(target) as writer:
            writer.append(np.array([1], np.int32), np.array([0, 1]))
            raise RuntimeError("worker died")
    assert list(tmp_path.iterdir()) == []


def test_bad_offsets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="offsets"):
        with TokenShardWriter(tmp_path / "s") as writer:
            writer.append(np.array([1, 2], np.int32), np.array([0, 1]))
    assert list(tmp_path.iterdir()) == []


def test_an_empty_shard_reads_back(tmp_path: Path) -> None:
    with TokenShardWriter(tmp_path / "s"):
        pass
    shard = read_token_shard(tmp_path / "s")
    assert len(shard.ids) == 0 and shard.offsets.tolist() == [0]
