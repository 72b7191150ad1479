"""Plain text corpora (one document per line), as word2vec C, fastText and gensim's
``LineSentence`` read them: plain, gzip, bz2 and zstd files, directories mixing them with
Parquet, large files read as byte ranges; the same vocabulary as the same text in Parquet, and
bad files named."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

import dw2v
from dw2v.config import IngestConfig, VocabConfig
from dw2v.errors import InputError
from dw2v.prepare import build_vocab
from dw2v.testing import SAMPLE_DIR, write_parquet
from dw2v.vocab import load


@pytest.fixture(scope="module")
def lines() -> list[str]:
    """The sample corpus's text (a slice of the King James Bible), one verse per line, with
    some empty lines and Windows line ends thrown in."""
    texts = pq.read_table(sorted(SAMPLE_DIR.glob("*.parquet"))[0], columns=["text"])
    out = [t for t in texts["text"].to_pylist() if t][:6000]
    out[10:10] = ["", "   "]
    return out


def _text(lines: list[str], crlf_every: int = 7) -> bytes:
    return "".join(line + ("\r\n" if i % crlf_every == 0 else "\n")
                   for i, line in enumerate(lines)).encode()


def _vocab(inputs: list[str], out: Path, client: Client,
           ingest: IngestConfig = IngestConfig()) -> tuple[dict[str, int], dict]:
    build_vocab(inputs, out, client=client, ingest=ingest, vocab=VocabConfig(min_count=1))
    vocab = load(out)
    report = json.loads((out / "vocab_report.json").read_text())
    return dict(zip(vocab.tokens.to_pylist(), vocab.counts.tolist())), report


@pytest.fixture(scope="module")
def parquet_vocab(lines: list[str], client2: Client,
                  tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, int], dict]:
    root = tmp_path_factory.mktemp("parquet")
    write_parquet(root / "in" / "part.parquet", lines)
    return _vocab([str(root / "in")], root / "vocab", client2)


@pytest.mark.parametrize("name,compress", [
    ("corpus.txt", lambda b: b), ("corpus.txt.gz", gzip.compress), ("corpus.txt.bz2", bz2.compress),
    ("corpus.txt.zst", lambda b: pa.compress(b, "zstd", asbytes=True)),
    ("corpus", lambda b: b)])  # an explicit file may be named anything
def test_text_files_give_the_vocabulary_of_the_same_text_in_parquet(
        name: str, compress, lines: list[str], parquet_vocab, client2: Client,
        tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(compress(_text(lines)))
    counts, report = _vocab([str(path)], tmp_path / "vocab", client2)
    want_counts, want = parquet_vocab
    assert counts == want_counts
    assert report["documents"] == want["documents"] and report["tokens"] == want["tokens"]
    assert report["empty_documents"] == want["empty_documents"] == 2
    assert "\r" not in "".join(counts)


def test_a_large_text_file_is_read_as_byte_ranges_each_line_once(
        lines: list[str], parquet_vocab, client2: Client, tmp_path: Path) -> None:
    """Ranges of 10 kB (about 40 of them, lines cut anywhere): the same counts, documents and
    tokens as one pass; token-id shards for the ranges, spread over both workers."""
    path = tmp_path / "big.txt"
    data = _text(lines)
    path.write_bytes(data)
    ingest = IngestConfig(text_block_bytes=10_000)
    counts, report = _vocab([str(path)], tmp_path / "vocab", client2, ingest)
    want_counts, want = parquet_vocab
    assert counts == want_counts
    assert report["documents"] == want["documents"] and report["files"] == 1
    manifest = json.loads((tmp_path / "vocab" / "work" / "manifest.json").read_text())
    assert len(manifest["shards"]) == -(-len(data) // 10_000)
    assert sum(s["tokens"] for s in manifest["shards"]) == want["tokens"]


def test_a_directory_mixes_parquet_and_text_and_ignores_other_files(
        lines: list[str], parquet_vocab, client2: Client, tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    write_parquet(root / "a.parquet", lines[:3000])
    (root / "b.txt.gz").write_bytes(gzip.compress(_text(lines[3000:])))
    (root / "README.md").write_text("not a corpus: words here are not counted zzzz\n")
    counts, report = _vocab([str(root)], tmp_path / "vocab", client2)
    assert counts == parquet_vocab[0] and "zzzz" not in counts and report["files"] == 2


@pytest.mark.parametrize("name,data,message", [
    ("bad.txt", b"good line\nbad \xff\xfe line\n", r"bad\.txt: invalid UTF-8 in the line at "
                                                   r"byte 10 \(invalid start byte at its byte 4\)"),
    ("bad.txt.gz", gzip.compress(b"fine\n" * 1000)[:-40], r"bad\.txt\.gz: corrupt or truncated "
                                                          "compressed data"),
    ("fake.txt.gz", b"this was never gzip", r"fake\.txt\.gz: corrupt or truncated compressed"),
    ("binary.txt", b"\x00\x01\x02 not text", r"binary\.txt: not a text file"),
])
def test_bad_text_files_are_named(name: str, data: bytes, message: str, client2: Client,
                                  tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / name).write_bytes(data)
    with pytest.raises(InputError, match=message):
        build_vocab([str(tmp_path / "in" / name)], tmp_path / "vocab", client=client2)
    assert not (tmp_path / "vocab").exists()


def test_train_on_a_text_file_finds_the_neighbours(client2: Client, tmp_path: Path) -> None:
    """The whole sample corpus as one text file, read as byte ranges: `lord` finds `god`."""
    texts = [t for f in sorted(SAMPLE_DIR.glob("*.parquet"))
             for t in pq.read_table(f, columns=["text"])["text"].to_pylist() if t]
    path = tmp_path / "kjv.txt"
    path.write_text("\n".join(texts) + "\n")
    config = dw2v.RunConfig(ingest=IngestConfig(text_block_bytes=path.stat().st_size // 2 + 1),
                            train=dw2v.TrainConfig(vector_size=32, epochs=2))
    model = dw2v.train(str(path), tmp_path / "model", config, client=client2)
    assert "god" in [w for w, _ in model.most_similar("lord", topn=10)]
    assert np.isfinite(model.vectors).all()


def test_parquet_token_lists_give_the_vocabulary_of_the_raw_text(
        lines: list[str], parquet_vocab, client2: Client, tmp_path: Path) -> None:
    """A ``list<string>`` column (pre-tokenized, as gensim takes sentences) is used as it is:
    the lists the tokenizer would make give its vocabulary; nulls are null documents."""
    from dw2v.testing import reference_tokens

    lists = [reference_tokens(line, lowercase=False) for line in lines]
    table = pa.table({"text": pa.array(lists + [None], pa.list_(pa.string()))})
    pq.write_table(table, tmp_path / "lists.parquet")
    counts, report = _vocab([str(tmp_path / "lists.parquet")], tmp_path / "vocab", client2)
    want_counts, want = parquet_vocab
    assert counts == want_counts  # lowercased as the raw text was
    assert report["tokens"] == want["tokens"] and report["null_documents"] == 1


def test_train_on_token_lists_finds_the_neighbours(client2: Client, tmp_path: Path) -> None:
    from dw2v.testing import reference_tokens

    texts = [t for f in sorted(SAMPLE_DIR.glob("*.parquet"))
             for t in pq.read_table(f, columns=["text"])["text"].to_pylist() if t]
    pq.write_table(pa.table({"tokens": [reference_tokens(t) for t in texts]}),
                   tmp_path / "kjv-tokens.parquet")
    config = dw2v.RunConfig(ingest=IngestConfig(text_column="tokens"),
                            train=dw2v.TrainConfig(vector_size=32, epochs=2))
    model = dw2v.train(str(tmp_path / "kjv-tokens.parquet"), tmp_path / "model", config,
                       client=client2)
    assert "god" in [w for w, _ in model.most_similar("lord", topn=10)]
