"""Document vectors (``dw2v.docvec``, ``emb.embed``, ``dw2v embed``) against a plain NumPy mean,
and the README's DuckDB query and LanceDB search over the Parquet export, run as written."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

import dw2v
from dw2v.cli import main
from dw2v.embeddings import Embeddings
from dw2v.testing import reference_tokens, write_parquet

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model(sample_dir: Path, client2: Client, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docvec") / "model"
    config = dw2v.RunConfig(train=dw2v.TrainConfig(vector_size=24, epochs=1))
    dw2v.train(str(sample_dir), out, config, client=client2)
    return out


def _mean(emb: Embeddings, tokens: list[str]) -> np.ndarray:
    rows = [emb.index[t] for t in tokens if t in emb.index]
    if not rows:
        return np.zeros(emb.vector_size, np.float32)
    return emb.vectors[rows].astype(np.float64).mean(axis=0).astype(np.float32)


TEXTS = ["In the beginning God created the heaven and the earth.", "", None,
         "zzzz qqqq", "And GOD said, Let there be light: and there was light."]


def test_embed_is_the_mean_of_known_word_vectors(model: Path) -> None:
    emb = dw2v.load(model)
    got = emb.embed(TEXTS)
    assert got.shape == (5, 24) and got.dtype == np.float32
    for text, vector in zip(TEXTS, got):
        np.testing.assert_allclose(vector, _mean(emb, reference_tokens(text)), atol=1e-6)
    assert not got[2].any() and not got[3].any()  # no words, unknown words: zeros
    lists = [reference_tokens(t) for t in TEXTS]
    np.testing.assert_allclose(emb.embed(lists), got, atol=1e-6)  # token lists as they are
    np.testing.assert_allclose(emb.embed(pa.array(TEXTS)), got, atol=1e-6)
    assert emb.embed([]).shape == (0, 24)


def test_embed_over_a_dask_series_runs_by_partition(model: Path, client2: Client) -> None:
    import dask.dataframe as dd
    import pandas as pd

    emb = dw2v.load(model)
    texts = [t or "" for t in TEXTS] * 7
    series = dd.from_pandas(pd.Series(texts), npartitions=3)
    result = emb.embed(series)
    assert result.numblocks[0] == 3
    np.testing.assert_allclose(result.compute(), emb.embed(texts), atol=1e-6)


def test_the_embed_command_writes_ids_and_vectors(model: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    emb = dw2v.load(model)
    corpus = tmp_path / "corpus"
    write_parquet(corpus / "a.parquet", TEXTS, extra={"doc_id": pa.array([10, 11, 12, 13, 14])})
    (corpus / "b.txt").write_text("God said\nthe light\n")
    out = tmp_path / "docs.parquet"
    assert main(["embed", str(model), str(corpus / "a.parquet"), "-o", str(out)]) == 0
    assert "5 document vectors (24 dimensions) written" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.column_names == ["doc_id", "vector"]
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 24)
    assert table["doc_id"].to_pylist() == [10, 11, 12, 13, 14]
    np.testing.assert_allclose(np.stack(table["vector"].to_numpy(zero_copy_only=False)),
                               emb.embed(TEXTS), atol=1e-6)
    # a text file: ids are the file and the line
    text_out = tmp_path / "text-docs.parquet"
    assert main(["embed", str(model), str(corpus / "b.txt"), "-o", str(text_out)]) == 0
    table = pq.read_table(text_out)
    assert table["row"].to_pylist() == [0, 1] and table["source"][0].as_py().endswith("b.txt")
    # an existing output: refused without --overwrite, and --overwrite replaces only ours
    assert main(["embed", str(model), str(corpus / "a.parquet"), "-o", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["embed", str(model), str(corpus / "a.parquet"), "-o", str(out),
                 "--overwrite"]) == 0
    foreign = tmp_path / "mine.parquet"
    pq.write_table(pa.table({"x": [1]}), foreign)
    assert main(["embed", str(model), str(corpus / "a.parquet"), "-o", str(foreign),
                 "--overwrite"]) == 2
    assert "replaces only a document-vectors file dw2v wrote" in capsys.readouterr().err
    assert pq.read_table(foreign).column_names == ["x"]
    # Parquet and text together: one id scheme for all (source and row), or a clear error
    mixed = tmp_path / "mixed.parquet"
    assert main(["embed", str(model), str(corpus), "-o", str(mixed)]) == 0
    table = pq.read_table(mixed)
    assert table.column_names == ["source", "row", "vector"] and table.num_rows == 7
    assert main(["embed", str(model), str(corpus), "-o", str(tmp_path / "no.parquet"),
                 "--id-column", "doc_id"]) == 1
    assert "b.txt: no id column 'doc_id' (a text file has no columns)" in capsys.readouterr().err
    # a missing id column is named; nothing is written
    assert main(["embed", str(model), str(corpus / "a.parquet"), "-o",
                 str(tmp_path / "none.parquet"), "--id-column", "nope"]) == 1
    assert "a.parquet: no id column 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "none.parquet").exists()


def test_the_readme_duckdb_query_runs_as_written(model: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    duckdb = pytest.importorskip("duckdb")
    sql = re.findall(r"```sql\n(.*?)```", (REPO / "README.md").read_text(), re.S)[0]
    assert main(["export", str(model), "--format", "parquet", "-o",
                 str(tmp_path / "vectors.parquet")]) == 0
    monkeypatch.chdir(tmp_path)
    rows = duckdb.sql(sql).fetchall()
    want = dw2v.load(model).most_similar("lord", topn=5)
    assert [w for w, _ in rows] == [w for w, _ in want]
    np.testing.assert_allclose([s for _, s in rows], [s for _, s in want], atol=1e-5)


def test_the_readme_lancedb_search_runs_as_written(model: Path, tmp_path: Path) -> None:
    pytest.importorskip("lancedb")
    readme = (REPO / "README.md").read_text()
    block = re.findall(r"```python\n(import lancedb\n.*?)```", readme, re.S)[0]
    assert main(["export", str(model), "--format", "parquet", "-o",
                 str(tmp_path / "vectors.parquet")]) == 0
    (tmp_path / "search.py").write_text(block)
    done = subprocess.run([sys.executable, "search.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    hits = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    want = dw2v.load(model).most_similar("lord", topn=5)
    assert [w for w, _ in hits] == [w for w, _ in want]
    np.testing.assert_allclose([s for _, s in hits], [s for _, s in want], atol=1e-3)
