"""Counting, pruning and finalizing the vocabulary, on real LocalClusters."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

from dw2v.config import IngestConfig, VocabConfig
from dw2v.errors import EmptyVocabularyError
from dw2v.ingest import check_shard, find_shards
from dw2v.prepare import build_vocab
from dw2v.testing import reference_counts, write_parquet
from dw2v.token_shards import read_token_shard
from dw2v.vocab import (COUNT_SCHEMA, CountStats, Counts, count_shard, finalize, load,
                        merge_counts, prune, save, split_counts, token_buckets)


def _counts(pairs: dict[str, int]) -> Counts:
    table = pa.table([pa.array(list(pairs)), pa.array(list(pairs.values()), pa.int64())],
                     schema=COUNT_SCHEMA)
    return Counts(table, CountStats(files=1, tokens=sum(pairs.values())))


def _as_dict(counts: Counts) -> dict[str, int]:
    return dict(zip(counts.table["token"].to_pylist(), counts.table["count"].to_pylist()))


def _sample_texts(sample_dir: Path) -> list[str | None]:
    return sum((pq.read_table(p, columns=["text"])["text"].to_pylist()
                for p in sorted(sample_dir.glob("*.parquet"))), [])


def test_count_shard_equals_plain_python(sample_dir: Path) -> None:
    url = find_shards([str(sample_dir / "kjv-001.parquet")], IngestConfig())[0]
    info = check_shard(url, 0, IngestConfig())
    counts = count_shard(info, IngestConfig(batch_size=1000))
    texts = pq.read_table(sample_dir / "kjv-001.parquet")["text"].to_pylist()
    assert _as_dict(counts) == dict(reference_counts(texts))
    assert counts.stats.rows == len(texts) and counts.stats.tokens == sum(
        reference_counts(texts).values())


def test_merge_adds_and_budget_keeps_the_most_frequent() -> None:
    a, b = _counts({"x": 3, "y": 1, "z": 2}), _counts({"x": 1, "w": 2, "z": 2})
    assert _as_dict(merge_counts([a, b])) == {"x": 4, "y": 1, "z": 4, "w": 2}
    merged = merge_counts([a, b], budget=2)
    assert _as_dict(merged) == {"x": 4, "z": 4}
    assert merged.stats.budget_pruned_distinct == 2 and merged.stats.budget_pruned_tokens == 3
    assert merged.stats.tokens == 11


def test_prune_breaks_ties_by_token() -> None:
    table = _counts({"b": 1, "a": 1, "c": 1}).table
    kept, distinct, tokens = prune(table, 2)
    assert kept["token"].to_pylist() == ["a", "b"] and (distinct, tokens) == (1, 1)


def test_budget_bounds_the_distinct_words_while_counting(tmp_path: Path) -> None:
    texts = [" ".join(f"w{i}" for i in range(j * 500, j * 500 + 500)) + " common" * 5
             for j in range(40)]
    path = write_parquet(tmp_path / "flood.parquet", texts)
    info = check_shard(str(path), 0, IngestConfig())
    counts = count_shard(info, IngestConfig(batch_size=5), budget=100)
    assert counts.table.num_rows <= 100
    assert _as_dict(counts)["common"] == 200
    assert counts.stats.budget_pruned_distinct >= 20_000 - 100


def test_token_buckets_are_stable_and_safe_on_tiny_strings() -> None:
    tokens = pa.array(["i", "am", "", "é", "a" * 40, "a" * 39 + "b", "iam"])
    buckets = token_buckets(tokens, 8)
    assert ((buckets >= 0) & (buckets < 8)).all()
    np.testing.assert_array_equal(token_buckets(tokens.slice(2), 8), buckets[2:])
    np.testing.assert_array_equal(token_buckets(pa.array(["iam"]), 8), buckets[-1:])
    many = token_buckets(pa.array([f"w{i}" for i in range(80_000)]), 8)
    assert np.bincount(many, minlength=8).min() > 9_000  # about even


def test_split_counts_partitions_disjointly_and_keeps_stats_once() -> None:
    counts = _counts({f"w{i}": i + 1 for i in range(500)})
    parts = split_counts(counts, 4)
    tokens = sum((p.table["token"].to_pylist() for p in parts), [])
    assert sorted(tokens) == sorted(counts.table["token"].to_pylist())
    assert sum((p.stats for p in parts), CountStats()) == counts.stats
    one = finalize(parts, VocabConfig(min_count=1))
    whole = finalize(counts, VocabConfig(min_count=1))
    assert one.tokens.equals(whole.tokens) and np.array_equal(one.counts, whole.counts)


def test_finalize_applies_the_budget_globally() -> None:
    parts = split_counts(_counts({f"w{i}": 1000 - i for i in range(300)}), 4)
    vocab = finalize(parts, VocabConfig(min_count=1, max_vocab_size=50))
    assert vocab.tokens.to_pylist() == [f"w{i}" for i in range(50)]


def test_finalize_orders_by_count_then_token_and_applies_min_count() -> None:
    counts = _counts({"b": 5, "a": 5, "c": 9, "d": 4, "e": 1})
    vocab = finalize(counts, VocabConfig(min_count=5))
    assert vocab.tokens.to_pylist() == ["c", "a", "b"]
    assert vocab.counts.tolist() == [9, 5, 5]
    assert vocab.distinct_seen == 5 and vocab.min_count == 5


def test_max_final_vocab_raises_min_count_like_gensim() -> None:
    counts = _counts({"a": 10, "b": 7, "c": 7, "d": 3})
    vocab = finalize(counts, VocabConfig(min_count=1, max_final_vocab=2))
    # keeping 2 would split the tie at 7, so gensim's rule keeps only the word above it
    assert vocab.tokens.to_pylist() == ["a"] and vocab.min_count == 8
    assert len(finalize(counts, VocabConfig(min_count=1, max_final_vocab=3))) == 3


def test_empty_vocabulary_names_min_count() -> None:
    with pytest.raises(EmptyVocabularyError, match="min_count=50"):
        finalize(_counts({"a": 3, "b": 2}), VocabConfig(min_count=50))


def test_noise_and_keep_probabilities_follow_word2vec() -> None:
    vocab = finalize(_counts({"a": 1000, "b": 100, "c": 10}), VocabConfig(min_count=1,
                                                                            sample=1e-2))
    counts = np.array([1000, 100, 10], dtype=float)
    noise = counts ** 0.75 / (counts ** 0.75).sum()
    np.testing.assert_allclose(vocab.noise_distribution, noise)
    threshold = 1e-2 * counts.sum()
    keep = np.minimum((np.sqrt(counts / threshold) + 1) * threshold / counts, 1)
    np.testing.assert_allclose(vocab.keep_probabilities, keep, rtol=1e-6)
    assert vocab.keep_probabilities[0] < 1 and vocab.keep_probabilities[2] == 1
    off = finalize(_counts({"a": 1000}), VocabConfig(min_count=1, sample=0))
    assert off.keep_probabilities.tolist() == [1.0]


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    vocab = finalize(_counts({"a": 9, "b": 7, "é": 6}), VocabConfig(min_count=6, sample=1e-4))
    save(vocab, tmp_path / "vocab.parquet")
    back = load(tmp_path)
    assert back.tokens.equals(vocab.tokens)
    np.testing.assert_array_equal(back.counts, vocab.counts)
    assert back.config == vocab.config and back.stats == vocab.stats
    table = pq.read_table(tmp_path / "vocab.parquet")
    assert table.schema.names == ["token", "count", "id"]
    assert [str(t) for t in table.schema.types] == ["string", "int64", "int32"]
    meta = json.loads(table.schema.metadata[b"dw2v.vocab"])
    assert meta["total_tokens"] == 22 and meta["settings"]["sample"] == 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.parquet"]


def test_sample_vocabulary_equals_plain_python(sample_dir: Path, client2: Client,
                                               tmp_path: Path) -> None:
    report = build_vocab([str(sample_dir)], tmp_path / "out", client=client2)
    reference = reference_counts(_sample_texts(sample_dir))
    vocab = load(tmp_path / "out")
    expected = sorted(((w, c) for w, c in reference.items() if c >= 5),
                      key=lambda wc: (-wc[1], wc[0]))
    assert list(zip(vocab.tokens.to_pylist(), vocab.counts.tolist())) == expected
    assert report.tokens == sum(reference.values()) and report.distinct == len(reference)
    assert report.kept == len(expected) and report.files == 4


def test_one_and_two_workers_give_identical_output(sample_dir: Path, client1: Client,
                                                   client2: Client, tmp_path: Path) -> None:
    config = VocabConfig(max_vocab_size=3000, split_every=2)  # the budget makes order matter
    ingest = IngestConfig(batch_size=4000)
    one = build_vocab([str(sample_dir)], tmp_path / "one", vocab=config, ingest=ingest,
                      client=client1)
    two = build_vocab([str(sample_dir)], tmp_path / "two", vocab=config, ingest=ingest,
                      client=client2)
    assert one.budget_pruned_distinct > 0
    assert (one.workers, two.workers) == (1, 2)
    a, b = load(tmp_path / "one"), load(tmp_path / "two")
    assert a.tokens.equals(b.tokens) and np.array_equal(a.counts, b.counts)
    assert a.stats == b.stats
    for shard in sorted((tmp_path / "one" / "work").glob("shard-*")):
        x, y = read_token_shard(shard), read_token_shard(tmp_path / "two" / "work" / shard.name)
        np.testing.assert_array_equal(x.ids, y.ids)
        np.testing.assert_array_equal(x.offsets, y.offsets)


def test_bucket_count_does_not_change_the_vocabulary(sample_dir: Path, client2: Client,
                                                    tmp_path: Path) -> None:
    one = build_vocab([str(sample_dir)], tmp_path / "b1", client=client2,
                      vocab=VocabConfig(buckets=1))
    eight = build_vocab([str(sample_dir)], tmp_path / "b8", client=client2,
                        vocab=VocabConfig(buckets=8))
    a, b = load(tmp_path / "b1"), load(tmp_path / "b8")
    assert a.tokens.equals(b.tokens) and np.array_equal(a.counts, b.counts)
    assert one.tokens == eight.tokens and one.distinct == eight.distinct


def test_memory_input(tmp_path: Path) -> None:
    fs = fsspec.filesystem("memory")
    texts = ["alpha beta gamma", "alpha beta", "alpha", None, ""]
    for i in range(3):
        with fs.open(f"/vocab-test/part-{i}.parquet", "wb") as handle:
            pq.write_table(pa.table({"text": texts}), handle)
    # the memory filesystem lives in one process: the cluster's workers must be threads
    with Client(processes=False, n_workers=2, threads_per_worker=1,
                dashboard_address=":0") as client:
        report = build_vocab(["memory://vocab-test"], tmp_path / "m", client=client,
                             vocab=VocabConfig(min_count=4))
    fs.rm("/vocab-test", recursive=True)
    vocab = load(tmp_path / "m")
    assert vocab.tokens.to_pylist() == ["alpha", "beta"] and vocab.counts.tolist() == [9, 6]
    assert (report.null_documents, report.empty_documents, report.documents) == (3, 3, 9)
    manifest = json.loads((tmp_path / "m" / "work" / "manifest.json").read_text())
    assert manifest["tokens"] == 15 and len(manifest["shards"]) == 3


# ------------------------------------------------------------------ the token length limit

def test_count_shard_counts_tokens_over_the_limit(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", ["z" * 2_000_000 + " the cat", "the " + "ж" * 60,
                                                  "q" * 101])
    info = check_shard(str(path), 0, IngestConfig())
    counts = count_shard(info, IngestConfig())
    assert _as_dict(counts) == {"the": 2, "cat": 1}
    assert counts.stats.long_tokens_dropped == 3 and counts.stats.tokens == 3
    assert counts.stats.empty_rows == 1  # the row holding only a long token
    merged = merge_counts([counts, counts])
    assert merged.stats.long_tokens_dropped == 6


def test_a_two_megabyte_token_is_dropped_counted_and_never_in_the_vocabulary(
        tmp_path: Path, client2: Client) -> None:
    huge = "x" * 2_000_000
    write_parquet(tmp_path / "in" / "a.parquet", [f"{huge} the cat", "the dog", huge])
    report = build_vocab([str(tmp_path / "in")], tmp_path / "out", client=client2,
                         vocab=VocabConfig(min_count=1))
    vocab = load(tmp_path / "out")
    assert dict(zip(vocab.tokens.to_pylist(), vocab.counts.tolist())) == {
        "the": 2, "cat": 1, "dog": 1}
    assert all(len(t.encode()) <= 100 for t in vocab.tokens.to_pylist())
    assert vocab.stats.long_tokens_dropped == 2  # recorded in vocab.parquet's metadata
    meta = json.loads(pq.read_table(tmp_path / "out" / "vocab.parquet").schema.metadata[
        b"dw2v.vocab"])
    assert meta["stats"]["long_tokens_dropped"] == 2
    assert report.tokens == 4 and report.kept_tokens == 4 and report.long_tokens_dropped == 2
    # encoding drops the same tokens: the token ids hold exactly the counted tokens
    manifest = json.loads((tmp_path / "out" / "work" / "manifest.json").read_text())
    assert manifest["tokens"] == 4


def test_the_report_summary_names_the_long_tokens_dropped() -> None:
    from dw2v.prepare import VocabReport

    report = VocabReport(
        output="o", files=1, skipped_files=[], documents=2, null_documents=0,
        empty_documents=1, tokens=4, distinct=3, budget_pruned_distinct=0,
        budget_pruned_tokens=0, kept=3, kept_tokens=4, min_count=1, sentences=2,
        expected_after_subsampling=4, workers=1, seconds_vocab=1.0, seconds_encode=1.0,
        seconds_total=2.0, settings={"ingest": {"tokenizer": {"max_token_bytes": 100}}},
        long_tokens_dropped=2)
    assert "tokens      4 (2 longer than 100 bytes: dropped)" in report.summary()
    assert json.loads(report.to_json())["long_tokens_dropped"] == 2
    assert "longer than" not in replace(report, long_tokens_dropped=0).summary()
