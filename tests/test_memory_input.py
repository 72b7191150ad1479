"""Corpora already in memory, from Python: a Dask Series, DataFrame or Bag (strings or token
lists), trained where Dask computes the partitions, without writing them out; an Arrow table
or array; a ``pyarrow.dataset`` Dataset (its files). Each gives the vocabulary of the same
text in Parquet; one trains to the expected neighbours."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from distributed import Client

import dw2v
from dw2v.config import IngestConfig, VocabConfig
from dw2v.errors import InputError
from dw2v.ingest import MemoryCorpus, as_inputs
from dw2v.prepare import build_vocab
from dw2v.testing import SAMPLE_DIR, reference_tokens, write_parquet
from dw2v.vocab import load


@pytest.fixture(scope="module")
def texts() -> list[str]:
    table = pq.read_table(sorted(SAMPLE_DIR.glob("*.parquet"))[1], columns=["text"])
    return table["text"].to_pylist()[:5000] + [None, ""]


def _vocab(inputs, out: Path, client: Client, ingest: IngestConfig = IngestConfig()):
    build_vocab(inputs, out, client=client, ingest=ingest, vocab=VocabConfig(min_count=1))
    vocab = load(out)
    report = json.loads((out / "vocab_report.json").read_text())
    return dict(zip(vocab.tokens.to_pylist(), vocab.counts.tolist())), report["documents"]


@pytest.fixture(scope="module")
def want(texts: list[str], client2: Client, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("memory")
    write_parquet(root / "in" / "a.parquet", texts)
    return _vocab([str(root / "in")], root / "vocab", client2)


def _collections(texts: list[str]) -> dict[str, object]:
    import dask.bag as db
    import dask.dataframe as dd
    import pandas as pd

    frame = pd.DataFrame({"doc": range(len(texts)), "text": texts})
    return {
        "dask-series": dd.from_pandas(frame["text"], npartitions=4),
        "dask-dataframe": dd.from_pandas(frame, npartitions=3),
        "dask-bag": db.from_sequence(texts, npartitions=5),
        "dask-bag-of-token-lists": db.from_sequence(
            [None if t is None else reference_tokens(t, lowercase=False) for t in texts],
            npartitions=2),
        "arrow-table": pa.table({"text": texts}),
        "arrow-array": pa.array(texts),
    }


@pytest.mark.parametrize("kind", ["dask-series", "dask-dataframe", "dask-bag",
                                  "dask-bag-of-token-lists", "arrow-table", "arrow-array"])
def test_a_corpus_in_memory_gives_the_vocabulary_of_the_same_text_in_parquet(
        kind: str, texts: list[str], want, client2: Client, tmp_path: Path) -> None:
    corpus = _collections(texts)[kind]
    assert isinstance(as_inputs(corpus), MemoryCorpus)
    counts, documents = _vocab(corpus, tmp_path / "vocab", client2)
    assert counts == want[0] and documents == want[1]


def test_a_pyarrow_dataset_is_read_as_its_files(texts: list[str], want, client2: Client,
                                                tmp_path: Path) -> None:
    write_parquet(tmp_path / "in" / "a.parquet", texts[:2000])
    write_parquet(tmp_path / "in" / "b.parquet", texts[2000:])
    dataset = ds.dataset(str(tmp_path / "in"), format="parquet")
    assert sorted(as_inputs(dataset)) == sorted(dataset.files)
    assert _vocab(dataset, tmp_path / "vocab", client2) == want


def test_a_partition_without_text_is_named(client2: Client, tmp_path: Path) -> None:
    import dask.dataframe as dd
    import pandas as pd

    frame = dd.from_pandas(pd.DataFrame({"body": ["a b", "c d"]}), npartitions=1)
    with pytest.raises(InputError, match=r"<dask partition 0>: no column 'text' \(columns: "
                                         r"body\)"):
        build_vocab(frame, tmp_path / "vocab", client=client2)
    numbers = dd.from_pandas(pd.Series([1, 2, 3]), npartitions=1)
    with pytest.raises(InputError, match="<dask partition 0>: holds int64, expected strings"):
        build_vocab(numbers, tmp_path / "vocab", client=client2)
    assert not (tmp_path / "vocab").exists()


def test_train_on_a_dask_series_finds_the_neighbours(client2: Client, tmp_path: Path) -> None:
    import dask.dataframe as dd

    frame = dd.read_parquet(str(SAMPLE_DIR), columns=["text"])
    config = dw2v.RunConfig(train=dw2v.TrainConfig(vector_size=32, epochs=2))
    model = dw2v.train(frame["text"], tmp_path / "model", config, client=client2)
    assert "god" in [w for w, _ in model.most_similar("lord", topn=10)]


def test_a_hugging_face_dataset_download_trains_on_one_split(texts: list[str], want,
                                                             client2: Client,
                                                             tmp_path: Path) -> None:
    """A dataset as ``huggingface-cli download`` lays it out (``data/SPLIT-0000K-of-0000N``
    Parquet files, a ``text`` column beside others, a README): the README's glob of one split
    reads that split's files only."""
    repo = tmp_path / "corpus"
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text("---\nconfigs: [{config_name: default}]\n---\n")
    half = len(texts) // 2
    for i, part in enumerate((texts[:half], texts[half:])):
        pq.write_table(pa.table({"id": list(range(len(part))), "text": part}),
                       repo / "data" / f"train-0000{i}-of-00002.parquet")
    pq.write_table(pa.table({"id": [0], "text": ["zqxheldout zqxwords"]}),
                   repo / "data" / "test-00000-of-00001.parquet")
    counts, documents = _vocab([str(repo / "data" / "train-*.parquet")], tmp_path / "vocab",
                               client2)
    assert (counts, documents) == want and "zqxheldout" not in counts
