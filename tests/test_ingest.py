"""Finding shards, checking them, streaming text and encoding to ids; bad files named clearly."""

from __future__ import annotations

from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dw2v.config import IngestConfig, TokenizerConfig
from dw2v.errors import InputError, NoInputError
from dw2v.ingest import check_shard, encode_shard, find_shards, iter_text
from dw2v.testing import reference_tokens, write_parquet
from dw2v.token_shards import read_token_shard

CONFIG = IngestConfig()


def write_invalid_utf8(path: Path) -> Path:
    """A string column holding bytes that are not UTF-8 (Arrow writes it unchecked)."""
    offsets = pa.array([0, 4, 9], pa.int32()).buffers()[1]
    text = pa.Array.from_buffers(pa.string(), 2, [None, offsets, pa.py_buffer(b"good\xff\xfebad")])
    pq.write_table(pa.table({"text": text}), path)
    return path


def test_find_shards_directory_glob_files_and_dedupe(tmp_path: Path) -> None:
    for name in ["a/1.parquet", "a/b/2.parquet", "a/notes.txt", "a/b/3.txt.gz", "a/README.md",
                 "a/data.csv", "c.parquet"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    found = find_shards([str(tmp_path / "a"), str(tmp_path / "*.parquet"),
                         str(tmp_path / "c.parquet")], CONFIG)
    # a directory gives its Parquet and text files (compressed too), nothing else
    assert found == [f"file://{tmp_path}/a/1.parquet", f"file://{tmp_path}/a/b/2.parquet",
                     f"file://{tmp_path}/a/b/3.txt.gz", f"file://{tmp_path}/a/notes.txt",
                     f"file://{tmp_path}/c.parquet"]


def test_relative_paths_become_absolute_urls(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    write_parquet(tmp_path / "x.parquet", ["a"])
    monkeypatch.chdir(tmp_path)
    assert find_shards(["x.parquet"], CONFIG) == [f"file://{tmp_path}/x.parquet"]


@pytest.mark.parametrize("spec", ["missing-dir", "*.nothing", "empty-dir"])
def test_no_match_is_an_error_naming_the_input(tmp_path: Path, spec: str) -> None:
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(NoInputError, match=spec.replace("*", r"\*")):
        find_shards([str(tmp_path / spec)], CONFIG)


def test_memory_urls(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    with fs.open("/ingest-test/part-0.parquet", "wb") as handle:
        pq.write_table(pa.table({"text": ["Memory text"]}), handle)
    urls = find_shards(["memory://ingest-test"], CONFIG)
    assert urls == ["memory:///ingest-test/part-0.parquet"]
    info = check_shard(urls[0], 0, CONFIG)
    assert info.rows == 1
    assert [t.to_pylist() for t in iter_text(info, CONFIG)] == [["Memory text"]]
    fs.rm("/ingest-test", recursive=True)


def test_missing_column_lists_the_columns_present(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "p.parquet", ["x"], column="body")
    with pytest.raises(InputError, match=r"p\.parquet: no column 'text' \(columns present: "
                                         r"'doc_id', 'body'\)"):
        check_shard(str(path), 0, CONFIG)


def test_non_string_column(tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    pq.write_table(pa.table({"text": pa.array([1, 2], pa.int64())}), path)
    with pytest.raises(InputError, match=r"n\.parquet: column 'text' is int64, expected a string"):
        check_shard(str(path), 0, CONFIG)


def test_binary_column_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": pa.array([b"ab"], pa.binary())}), path)
    with pytest.raises(InputError, match="is binary, expected a string"):
        check_shard(str(path), 0, CONFIG)


def test_not_parquet_and_truncated(tmp_path: Path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"this is not parquet at all" * 10)
    with pytest.raises(InputError, match=r"junk\.parquet: not a Parquet file, or truncated"):
        check_shard(str(junk), 0, CONFIG)
    good = write_parquet(tmp_path / "good.parquet", ["some text"] * 100)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cut\.parquet: not a Parquet file, or truncated"):
        check_shard(str(cut), 0, CONFIG)


def test_empty_files_are_marked_empty(tmp_path: Path) -> None:
    zero = tmp_path / "zero.parquet"
    zero.write_bytes(b"")
    no_rows = write_parquet(tmp_path / "none.parquet", [])
    assert check_shard(str(zero), 0, CONFIG).empty
    assert check_shard(str(no_rows), 1, CONFIG).empty
    assert list(iter_text(check_shard(str(no_rows), 1, CONFIG), CONFIG)) == []


def test_all_null_column_is_refused_from_footer_statistics(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "nulls.parquet", [None, None, None])
    with pytest.raises(InputError, match=r"nulls\.parquet: column 'text' is entirely null"):
        check_shard(str(path), 0, CONFIG)


def test_invalid_utf8_names_file_and_rows(tmp_path: Path) -> None:
    path = write_invalid_utf8(tmp_path / "latin1.parquet")
    info = check_shard(str(path), 0, CONFIG)
    with pytest.raises(InputError, match=r"latin1\.parquet: invalid UTF-8 .* rows 0\.\.1"):
        list(iter_text(info, CONFIG))


def test_only_the_text_column_is_read_in_batches(tmp_path: Path) -> None:
    texts = [f"doc {i}" for i in range(10)]
    path = write_parquet(tmp_path / "t.parquet", texts, extra={"big": [b"x" * 1000] * 10})
    config = IngestConfig(batch_size=4)
    batches = list(iter_text(check_shard(str(path), 0, config), config))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sum((b.to_pylist() for b in batches), []) == texts


def test_dictionary_encoded_text_column(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    text = pa.array(["a b", "a"]).dictionary_encode()
    pq.write_table(pa.table({"text": text}), path)
    info = check_shard(str(path), 0, CONFIG)
    assert [t.to_pylist() for t in iter_text(info, CONFIG)] == [["a b", "a"]]


def test_encode_shard_maps_tokens_to_ids_and_drops_unknown(tmp_path: Path) -> None:
    texts = ["The cat sat on the mat", None, "", "a dog, a cat", "the " * 12]
    path = write_parquet(tmp_path / "e.parquet", texts)
    vocab = pa.array(["the", "cat", "a", "mat"])
    config = IngestConfig(batch_size=2, tokenizer=TokenizerConfig(max_sentence_length=5))
    info = check_shard(str(path), 3, config)
    result = encode_shard(info, vocab, str(tmp_path / "work"), config)
    shard = read_token_shard(tmp_path / "work" / "shard-00003")
    words = vocab.to_pylist()
    decoded = [[words[i] for i in shard.ids[a:b]] for a, b in
               zip(shard.offsets[:-1], shard.offsets[1:])]
    known = set(words)
    expected_docs = [[t for t in reference_tokens(x) if t in known] for x in texts]
    expected = []
    for doc in expected_docs:  # cut into sentences of at most 5
        expected += [doc[i:i + 5] for i in range(0, len(doc), 5)]
    assert decoded == expected
    assert result.tokens == len(shard.ids) == 4 + 3 + 12
    assert result.sentences == shard.n_sentences
    assert shard.ids.dtype == np.int32
    assert shard.meta["source"] == str(path)


def test_batches_are_cut_into_pieces_of_bounded_text() -> None:
    """Every row once, in order; each piece within the bound unless it is one longer row."""
    from dw2v.ingest import _pieces

    rows = ["a" * n if n % 7 else None for n in [3, 50, 10, 400, 1, 0, 90, 60, 60, 5] * 3]
    text = pa.array(rows, pa.string())
    pieces = list(_pieces(text, 100))
    assert sum((p.to_pylist() for p in pieces), []) == rows
    for piece in pieces:
        size = sum(len(r or "") for r in piece.to_pylist())
        assert size <= 100 or len(piece) == 1
    assert len(pieces) > 5
    assert list(_pieces(text, 10**6)) == [text]  # small batches pass whole


def test_encoding_drops_the_tokens_counting_drops(tmp_path: Path) -> None:
    """Even when the vocabulary holds a token over the limit (a base model's, say), encoding
    drops it as counting does, so the two passes agree."""
    long_word = "w" * 150
    path = write_parquet(tmp_path / "e.parquet", [f"the {long_word} cat", long_word])
    vocab = pa.array(["the", long_word, "cat"])
    info = check_shard(str(path), 0, CONFIG)
    result = encode_shard(info, vocab, str(tmp_path / "work"), CONFIG)
    shard = read_token_shard(tmp_path / "work" / "shard-00000")
    assert shard.ids.tolist() == [0, 2] and shard.offsets.tolist() == [0, 2]
    assert result.tokens == 2
    wide = IngestConfig(tokenizer=TokenizerConfig(max_token_bytes=200))
    encode_shard(info, vocab, str(tmp_path / "wide"), wide)
    assert read_token_shard(tmp_path / "wide" / "shard-00000").ids.tolist() == [0, 1, 2, 1]


def _row_grouped(path: Path, texts: list[str], group_rows: int) -> Path:
    write_parquet(path, texts, row_group_size=group_rows)
    return path


def test_a_parquet_file_of_row_groups_is_cut_along_them_when_files_are_few(
        tmp_path: Path) -> None:
    from dataclasses import replace

    from dw2v.ingest import split_parquet_shards

    big = _row_grouped(tmp_path / "big.parquet", [f"w{i} x" for i in range(1000)], 100)
    small = _row_grouped(tmp_path / "small.parquet", ["a b"] * 100, 50)
    infos = [check_shard(f"file://{big}", 0, CONFIG), check_shard(f"file://{small}", 1, CONFIG)]
    assert infos[0].group_rows == (100,) * 10 and infos[1].group_rows == (50, 50)
    parts = split_parquet_shards(infos, 8)
    # about 8 shards, each file in proportion to its rows, whole row groups, in order
    assert [(p.url, p.group_lo, p.group_hi) for p in parts][-1] == (f"file://{small}", 0, -1)
    big_parts = [p for p in parts if p.url.endswith("big.parquet")]
    assert len(big_parts) == 8 and big_parts[0].group_lo == 0 and big_parts[-1].group_hi == 10
    assert all(a.group_hi == b.group_lo for a, b in zip(big_parts, big_parts[1:]))
    assert sum(p.rows for p in big_parts) == 1000 and [p.index for p in parts] == list(range(9))
    assert [p.first_part for p in big_parts] == [True] + [False] * 7
    assert "(row groups 0..1)" in big_parts[0].name
    # each part reads its own rows, and together they read the file once, in order
    read = [t for p in big_parts for batch in iter_text(p, CONFIG) for t in batch.to_pylist()]
    assert read == [f"w{i} x" for i in range(1000)]
    # enough files already: nothing is cut
    assert split_parquet_shards(infos, 2) == infos
    one = split_parquet_shards([replace(infos[0], group_rows=(1000,))], 8)[0]
    assert (one.group_lo, one.group_hi) == (0, -1)  # one row group: the whole file
