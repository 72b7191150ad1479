"""Tokenize once: counting keeps each shard's tokens as local ids, and encoding from them gives
the same token-id shards as tokenizing the text again; incomplete or damaged ones are handled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dw2v.config import IngestConfig, TokenizerConfig
from dw2v.errors import InputError
from dw2v.ingest import check_shard, encode_shard
from dw2v.local_ids import LOCAL_DIR, has_local_ids, local_path, read_local_ids
from dw2v.prepare import WORK_DIR, build_vocab
from dw2v.testing import write_parquet
from dw2v.token_shards import read_token_shard
from dw2v.tokenize import tokenize
from dw2v.vocab import count_shard

TEXTS = ["The cat's hat, on the mat!", None, "", "Café au lait — naïve façade", "w" * 150 + " a",
         "a b c d e f g h i j k l m n o p", "the the the cat", "Don't stop: 42 times"] * 5
CONFIG = IngestConfig(batch_size=7, tokenizer=TokenizerConfig(max_sentence_length=4))
VOCAB = pa.array(["the", "a", "cat", "café", "don't", "42", "h", "naïve"])


def _shard(tmp_path: Path) -> object:
    return check_shard(str(write_parquet(tmp_path / "in.parquet", TEXTS)), 2, CONFIG)


def _arrays(path: Path) -> tuple[list[int], list[int]]:
    shard = read_token_shard(path)
    return shard.ids.tolist(), shard.offsets.tolist()


def test_local_ids_hold_the_tokenizers_tokens(tmp_path: Path) -> None:
    info = _shard(tmp_path)
    local = local_path(tmp_path / "work", info.index)
    counts = count_shard(info, CONFIG, local=local)
    assert has_local_ids(local)
    batches = list(read_local_ids(local))
    assert len(batches) == 6  # 40 rows in batches of 7
    tokens = [t for b in batches for t in b.dictionary.take(pa.array(b.ids)).to_pylist()]
    expected = [t for i in range(0, len(TEXTS), 7)
                for t in tokenize(pa.array(TEXTS[i:i + 7]), CONFIG.tokenizer).tokens.to_pylist()]
    assert tokens == expected
    assert sum(int(b.row_lengths.sum()) for b in batches) == counts.stats.tokens == len(tokens)
    assert sum(len(b.row_lengths) for b in batches) == len(TEXTS)
    table = counts.table.to_pydict()
    assert dict(zip(table["token"], table["count"]))["the"] == tokens.count("the")


def test_encoding_from_local_ids_equals_encoding_the_text(tmp_path: Path) -> None:
    info = _shard(tmp_path)
    local = local_path(tmp_path / "work", info.index)
    count_shard(info, CONFIG, local=local)
    encode_shard(info, VOCAB, str(tmp_path / "from-local"), CONFIG, local=local)
    encode_shard(info, VOCAB, str(tmp_path / "from-text"), CONFIG)
    ids, offsets = _arrays(tmp_path / "from-local" / "shard-00002")
    assert (ids, offsets) == _arrays(tmp_path / "from-text" / "shard-00002")
    assert len(ids) > 40 and max(np.diff(offsets)) == 4
    assert not Path(local).exists()  # removed once encoded


def test_missing_or_incomplete_local_ids_mean_the_text_is_read_again(tmp_path: Path) -> None:
    info = _shard(tmp_path)
    encode_shard(info, VOCAB, str(tmp_path / "from-text"), CONFIG)
    expected = _arrays(tmp_path / "from-text" / "shard-00002")
    half = Path(local_path(tmp_path / "work", info.index))
    half.mkdir(parents=True)
    (half / "ids.npy").write_bytes(b"half written")  # no meta.json: never completed
    assert not has_local_ids(half)
    for local in (str(half), str(tmp_path / "absent"), None):
        out = tmp_path / f"out-{abs(hash(local))}"
        encode_shard(info, VOCAB, str(out), CONFIG, local=local)
        assert _arrays(out / "shard-00002") == expected


def test_damaged_local_ids_are_an_error_naming_them(tmp_path: Path) -> None:
    info = _shard(tmp_path)
    local = local_path(tmp_path / "work", info.index)
    count_shard(info, CONFIG, local=local)
    meta = Path(local) / "meta.json"
    batches = json.loads(meta.read_text())["batches"]
    batches[0][0] += 5
    meta.write_text(json.dumps({"batches": batches}))
    with pytest.raises(InputError, match="shard-00002.*inconsistent"):
        encode_shard(info, VOCAB, str(tmp_path / "out"), CONFIG, local=local)
    assert not (tmp_path / "out" / "shard-00002").exists()


def test_a_failed_count_leaves_no_local_ids(tmp_path: Path) -> None:
    """Invalid UTF-8 in the second batch: the first was already written, and is removed."""
    offsets = pa.array([0, 4, 9], pa.int32()).buffers()[1]
    text = pa.Array.from_buffers(pa.string(), 2,
                                 [None, offsets, pa.py_buffer(b"good\xff\xfebad")])
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"text": text}), path)
    config = IngestConfig(batch_size=1)
    info = check_shard(str(path), 0, config)
    local = local_path(tmp_path / "work", 0)
    with pytest.raises(InputError, match="bad.parquet.*UTF-8"):
        count_shard(info, config, local=local)
    assert list(Path(local).parent.iterdir()) == []


def test_the_vocabulary_job_leaves_no_local_ids(tmp_path: Path, client2: object) -> None:
    for i in range(3):
        write_parquet(tmp_path / "in" / f"p{i}.parquet", TEXTS)
    build_vocab([str(tmp_path / "in")], tmp_path / "out", client=client2, progress=False)
    work = tmp_path / "out" / WORK_DIR
    assert not (work / LOCAL_DIR).exists()
    assert sorted(p.name for p in work.iterdir()) == [
        "manifest.json", "shard-00000", "shard-00001", "shard-00002"]


def test_only_local_ids_directories_are_replaced_or_removed(tmp_path: Path) -> None:
    """A path outside a ``.local-ids`` directory is refused, and nothing there is touched."""
    from dw2v.local_ids import LocalIdsWriter, remove_local_ids

    keep = tmp_path / "users-data"
    keep.mkdir()
    (keep / "meta.json").write_text("{}")
    with pytest.raises(ValueError, match="not a local-ids directory"):
        LocalIdsWriter(keep)
    with pytest.raises(ValueError, match="not a local-ids directory"):
        remove_local_ids(keep)
    assert (keep / "meta.json").read_text() == "{}"
