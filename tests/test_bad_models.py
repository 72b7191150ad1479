"""Damaged models and vectors files: each is refused with a message naming the file and the
problem, through the real ``dw2v`` command (exit code 1, no traceback), never a wrong answer.

One tiny model is trained per module; every case copies it, damages the copy, and runs
``dw2v similar`` on it in a subprocess. Checkpoints are tested at function level.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

import dw2v
from dw2v.embeddings import MODEL_JSON, VECTORS
from dw2v.errors import Dw2vError
from dw2v.export import export
from dw2v.merge import (CheckpointError, Params, finish_checkpoint, latest_checkpoint,
                        load_params, read_checkpoint, read_state, write_checkpoint, write_part)
from dw2v.testing import write_parquet
from dw2v.vocab import VOCAB_FILE
from dw2v.vocab import load as load_vocab

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def model(sample_dir: Path, client1: Client, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained model (a few hundred words, 8 dimensions, one epoch)."""
    root = tmp_path_factory.mktemp("bad-models")
    texts = pq.read_table(sample_dir / "kjv-000.parquet",
                          columns=["text"])["text"].to_pylist()[:1500]
    write_parquet(root / "in" / "a.parquet", texts)
    out = root / "model"
    config = dw2v.RunConfig(train=dw2v.TrainConfig(vector_size=8, epochs=1))
    dw2v.train([str(root / "in")], out, config, client=client1)
    return out


@pytest.fixture()
def copy(model: Path, tmp_path: Path) -> Path:
    """A copy of the model for one case to damage."""
    target = tmp_path / "m"
    shutil.copytree(model, target)
    return target


def _refused(target: Path, *expected: str, command: str = "similar",
             extra: tuple[str, ...] = ("lord",)) -> str:
    """Run ``dw2v COMMAND TARGET ...``; it must exit 1 with one ``dw2v: error:`` message that
    holds every ``expected`` text and no traceback. Returns stderr."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "dw2v.cli", command, str(target), *extra],
                          capture_output=True, text=True, env=env, timeout=120)
    err = done.stderr
    assert done.returncode == 1, (done.returncode, done.stdout, err)
    assert err.startswith("dw2v: error: "), err
    assert "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)
    return err


def _npy_size(path: Path) -> int:
    return path.stat().st_size


def test_the_undamaged_model_answers(model: Path) -> None:
    emb = dw2v.load(model)
    assert "lord" in emb and emb.vectors.shape == (len(emb), 8)


# ------------------------------------------------------------------ vectors.npy

def test_missing_vectors(copy: Path) -> None:
    (copy / VECTORS).unlink()
    _refused(copy, f"{copy / VECTORS}: missing")


def test_truncated_vectors(copy: Path) -> None:
    path = copy / VECTORS
    size = _npy_size(path)
    with open(path, "r+b") as handle:
        handle.truncate(size - 100)
    _refused(copy, f"{path}: truncated (expected {size:,} bytes", f"found {size - 100:,}")


def test_vectors_cut_inside_the_header(copy: Path) -> None:
    path = copy / VECTORS
    path.write_bytes(path.read_bytes()[:20])
    _refused(copy, f"{path}: not a NumPy .npy file")


def test_vectors_that_are_not_npy(copy: Path) -> None:
    path = copy / VECTORS
    path.write_bytes(b"the 0.1 0.2 0.3\n" * 100)
    _refused(copy, f"{path}: not a NumPy .npy file")


def test_vectors_longer_than_the_header_says(copy: Path) -> None:
    path = copy / VECTORS
    with open(path, "ab") as handle:
        handle.write(b"\0" * 64)
    _refused(copy, f"{path}: 64 bytes longer than its header says")


def test_float64_vectors(copy: Path) -> None:
    path = copy / VECTORS
    np.save(path, np.load(path).astype(np.float64))
    _refused(copy, f"{path}: holds float64 values, not float32")


def test_one_dimensional_vectors(copy: Path) -> None:
    path = copy / VECTORS
    np.save(path, np.load(path).reshape(-1))
    _refused(copy, f"{path}: holds a 1-D array", "not a 2-D matrix")


def test_pickled_object_vectors(copy: Path) -> None:
    path = copy / VECTORS
    rows = len(np.load(path))
    np.save(path, np.array([{"x": 1}] * rows, dtype=object), allow_pickle=True)
    _refused(copy, f"{path}: holds Python objects")


def test_nan_vectors_are_refused_with_the_count_of_bad_rows(copy: Path) -> None:
    path = copy / VECTORS
    vectors = np.load(path)
    vectors[[3, 7]] = np.nan
    vectors[11, 2] = np.inf
    np.save(path, vectors)
    words = load_vocab(copy).tokens.to_pylist()
    _refused(copy, f"{path}: 3 rows hold NaN or inf", f"the first: row 3, {words[3]!r}")


def test_vectors_with_fewer_rows_than_the_vocabulary(copy: Path) -> None:
    path = copy / VECTORS
    vectors = np.load(path)
    np.save(path, vectors[:-5])
    meta = json.loads((copy / MODEL_JSON).read_text())
    meta.pop("vocab_size", None)  # so that the vocabulary is what disagrees
    (copy / MODEL_JSON).write_text(json.dumps(meta))
    _refused(copy, f"{path}: {len(vectors) - 5} rows but {VOCAB_FILE} has {len(vectors)} words")


# ------------------------------------------------------------------ model.json

def test_model_json_that_is_not_json(copy: Path) -> None:
    (copy / MODEL_JSON).write_text('{"vector_size": 8, "rounds": [')
    _refused(copy, f"{copy / MODEL_JSON}: not valid JSON (")


def test_model_json_that_is_not_an_object(copy: Path) -> None:
    (copy / MODEL_JSON).write_text("[8, 100]")
    _refused(copy, f"{copy / MODEL_JSON}: not a JSON object (holds a list)")


def test_model_json_whose_dimension_disagrees_with_the_vectors(copy: Path) -> None:
    meta = json.loads((copy / MODEL_JSON).read_text())
    meta["vector_size"] = 100
    (copy / MODEL_JSON).write_text(json.dumps(meta))
    _refused(copy, f"{copy / MODEL_JSON}: vector_size 100 but {VECTORS} has 8 columns")


def test_model_json_whose_vocab_size_disagrees_with_the_vectors(copy: Path) -> None:
    meta = json.loads((copy / MODEL_JSON).read_text())
    rows = meta["vocab_size"]
    meta["vocab_size"] = rows + 1
    (copy / MODEL_JSON).write_text(json.dumps(meta))
    _refused(copy, f"{copy / MODEL_JSON}: vocab_size {rows + 1} but {VECTORS} has {rows} rows")


def test_model_json_with_a_nonsense_dimension(copy: Path) -> None:
    meta = json.loads((copy / MODEL_JSON).read_text())
    meta["vector_size"] = "eight"
    (copy / MODEL_JSON).write_text(json.dumps(meta))
    _refused(copy, f"{copy / MODEL_JSON}: vector_size is 'eight', not a positive whole number")


# ------------------------------------------------------------------ vocab.parquet

def test_missing_vocabulary(copy: Path) -> None:
    (copy / VOCAB_FILE).unlink()
    _refused(copy, f"{copy / VOCAB_FILE}: missing")


def test_corrupt_vocabulary(copy: Path) -> None:
    path = copy / VOCAB_FILE
    path.write_bytes(path.read_bytes()[:-30])
    _refused(copy, f"{path}: cannot read vocabulary: not a readable Parquet file")


def test_vocabulary_with_malformed_metadata(copy: Path) -> None:
    path = copy / VOCAB_FILE
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"dw2v.vocab"])
    del meta["settings"]
    pq.write_table(table.replace_schema_metadata({b"dw2v.vocab": json.dumps(meta)}), path)
    _refused(copy, f"{path}: malformed dw2v vocabulary metadata (no 'settings')")


def test_a_parquet_file_that_is_not_a_vocabulary(copy: Path) -> None:
    path = copy / VOCAB_FILE
    pq.write_table(pa.table({"word": ["a", "b"]}), path)
    _refused(copy, f"{path}: not a dw2v vocabulary")


# ------------------------------------------------------------------ the other commands

@pytest.mark.parametrize("command,extra", [
    ("export", ("--format", "word2vec-text", "-o", "OUT")),
    ("index", ()),
    ("eval", ("--similarity", "PAIRS")),
    ("report", ()),
    ("analogy", ("king", "queen", "man")),
])
def test_every_command_that_reads_a_model_refuses_a_truncated_one(
        copy: Path, tmp_path: Path, command: str, extra: tuple[str, ...]) -> None:
    path = copy / VECTORS
    with open(path, "r+b") as handle:
        handle.truncate(_npy_size(path) - 1)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("lord\tgod\t9.0\n")
    extra = tuple(str(tmp_path / "out.txt") if a == "OUT" else str(pairs) if a == "PAIRS"
                  else a for a in extra)
    _refused(copy, f"{path}: truncated", command=command, extra=extra)
    assert not (tmp_path / "out.txt").exists() and not (copy / "index").exists()


def test_a_damaged_index_is_named(copy: Path) -> None:
    pytest.importorskip("faiss")
    from dw2v.search import AnnIndex

    AnnIndex.build(dw2v.load(copy), "faiss").save(copy / "index")
    target = copy / "index" / "index.faiss"
    target.write_bytes(target.read_bytes()[:100])
    _refused(copy, f"{target}: cannot be read (", "dw2v index --overwrite")
    (copy / "index" / "index.json").write_text("[]")
    _refused(copy, f"{copy / 'index' / 'index.json'}: not a dw2v index description")


# ------------------------------------------------------------------ word2vec files

@pytest.fixture()
def text_file(model: Path, tmp_path: Path) -> Path:
    path = tmp_path / "vectors.txt"
    export(dw2v.load(model), path, "word2vec-text")
    return path


@pytest.fixture()
def binary_file(model: Path, tmp_path: Path) -> Path:
    path = tmp_path / "vectors.bin"
    export(dw2v.load(model), path, "word2vec-binary")
    return path


def _with_header(path: Path, header: str) -> Path:
    data = path.read_bytes()
    path.write_bytes(header.encode() + data[data.index(b"\n"):])
    return path


def test_text_header_claiming_a_trillion_words(text_file: Path) -> None:
    _with_header(text_file, "1000000000000 8")
    _refused(text_file, f"{text_file}: line 1: the header claims 1,000,000,000,000 words of "
                        "dimension 8, which need at least", "a wrong header or a truncated file")


def test_binary_header_claiming_a_trillion_words(binary_file: Path) -> None:
    _with_header(binary_file, "1000000000000 8")
    _refused(binary_file, f"{binary_file}: line 1: the header claims 1,000,000,000,000 words",
             f"need at least {10**12 * 34:,} bytes")


def test_binary_header_claiming_a_billion_dimensions(binary_file: Path) -> None:
    _with_header(binary_file, f"2 {10**9}")
    _refused(binary_file, f"{binary_file}: line 1: the header claims 2 words of dimension "
                          "1,000,000,000")


def test_text_body_shorter_than_its_header(text_file: Path) -> None:
    count = int(text_file.read_text().split(maxsplit=1)[0])
    _with_header(text_file, f"{count + 5} 8")
    _refused(text_file, f"{text_file}: line {count + 2}: the file ends after {count} of "
                        f"{count + 5} words")


def test_binary_body_shorter_than_its_header(binary_file: Path) -> None:
    data = binary_file.read_bytes()
    binary_file.write_bytes(data[:len(data) - 20])
    _refused(binary_file, f"{binary_file}: record ", "the file ends after")


def test_text_value_that_is_not_a_number(text_file: Path) -> None:
    lines = text_file.read_text(encoding="utf-8").split("\n")
    parts = lines[3].split(" ")
    parts[4] = "0.1.2"
    lines[3] = " ".join(parts)
    text_file.write_text("\n".join(lines), encoding="utf-8")
    _refused(text_file, f"{text_file}: line 4: a value is not a number ('0.1.2')")


def test_text_line_with_a_wrong_column_count(text_file: Path) -> None:
    lines = text_file.read_text(encoding="utf-8").split("\n")
    lines[5] += " 0.5"
    text_file.write_text("\n".join(lines), encoding="utf-8")
    _refused(text_file, f"{text_file}: line 6: expected a word and 8 numbers, found 9")


def test_text_nan_values(text_file: Path) -> None:
    lines = text_file.read_text(encoding="utf-8").split("\n")
    parts = lines[2].split(" ")
    parts[1] = "nan"
    lines[2] = " ".join(parts)
    text_file.write_text("\n".join(lines), encoding="utf-8")
    _refused(text_file, f"{text_file}: 1 row holds NaN or inf (the first: row 1")


# ------------------------------------------------------------------ checkpoints (functions)

W_IN, W_OUT = "W_in.part-00000-of-00001.npy", "W_out.part-00000-of-00001.npy"


def _checkpoint(root: Path) -> Path:
    rng = np.random.default_rng(0)
    params = Params(rng.normal(size=(6, 3)).astype(np.float32),
                    rng.normal(size=(6, 3)).astype(np.float32))
    write_checkpoint(root, params, {"round": 3, "config": {}, "plan": [], "history": []})
    path = latest_checkpoint(root)
    assert path is not None
    return path


@pytest.mark.parametrize("content,message", [
    ('{"round": 3,', "state.json: not valid JSON ("),
    ("[3]", "state.json: not a JSON object (holds a list)"),
    ('{"parts": 1}', "state.json: has no 'round'"),
    ('{"round": "three"}', "state.json: round is 'three', not a whole number >= 0"),
    ('{"round": 3, "parts": 0}', "state.json: parts is 0, not a whole number >= 1"),
])
def test_a_malformed_state_json_is_named(tmp_path: Path, content: str, message: str) -> None:
    path = _checkpoint(tmp_path)
    (path / "state.json").write_text(content)
    for read in (lambda: read_checkpoint(tmp_path), lambda: load_params(path)):
        with pytest.raises(CheckpointError) as info:
            read()
        assert str(info.value).startswith(str(path / "state.json"))
        assert message in str(info.value)


def test_state_json_without_the_keys_a_caller_needs(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    assert read_state(path, keys=("config", "plan"))["round"] == 3
    (path / "state.json").write_text('{"round": 3}')
    with pytest.raises(CheckpointError, match=r"state.json: has no 'config', 'plan'"):
        read_state(path, keys=("config", "plan"))


@pytest.mark.parametrize("name", [W_IN, W_OUT])
def test_missing_or_truncated_parameters_are_named(tmp_path: Path, name: str) -> None:
    path = _checkpoint(tmp_path)
    target = path / name
    size = target.stat().st_size
    with open(target, "r+b") as handle:
        handle.truncate(size - 8)
    with pytest.raises(CheckpointError, match=rf"{name}: truncated \(expected {size:,} bytes"):
        load_params(path)
    target.unlink()
    with pytest.raises(CheckpointError, match=rf"{name}: missing"):
        read_checkpoint(tmp_path)


def test_parameters_of_different_shapes_or_with_nan_are_named(tmp_path: Path) -> None:
    path = _checkpoint(tmp_path)
    np.save(path / W_OUT, np.zeros((5, 3), np.float32))
    with pytest.raises(CheckpointError, match=r"W_in is \(6, 3\) but W_out is \(5, 3\)"):
        load_params(path)
    bad = np.zeros((6, 3), np.float32)
    bad[2, 1] = np.nan
    np.save(path / W_OUT, bad)
    with pytest.raises(CheckpointError, match=r"W_out.part-00000-of-00001.npy: 1 row holds "
                                              "NaN or inf"):
        load_params(path)


def test_parts_that_do_not_fit_together_are_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    whole = Params(rng.normal(size=(7, 3)).astype(np.float32),
                   rng.normal(size=(7, 3)).astype(np.float32))
    (tmp_path / "checkpoints").mkdir()
    for rank in range(2):
        rows = whole.W_in[rank::2] if rank == 0 else whole.W_in[:2]  # owner 1 holds 3 rows
        write_part(tmp_path, 2, "j", rank, 2, Params(rows, rows))
    finish_checkpoint(tmp_path, 2, "j", 2, {})
    with pytest.raises(CheckpointError, match=r"W_in.part-00000-of-00002.npy: shape \(4, 3\), "
                                              r"but the checkpoint's parts of 6 x 3 give owner "
                                              r"0 \(3, 3\)"):
        load_params(latest_checkpoint(tmp_path))


@pytest.mark.parametrize("content,message", [
    ("{", "latest.json: not valid JSON ("),
    ('["round-00003"]', "latest.json: names no checkpoint"),
    ('{"checkpoint": "../../etc"}', "latest.json: names no checkpoint"),
    ('{"checkpoint": "round-00009"}', "latest.json: points at round-00009, which is incomplete"),
])
def test_a_malformed_latest_pointer_is_named(tmp_path: Path, content: str,
                                             message: str) -> None:
    path = _checkpoint(tmp_path)
    (path.parent / "latest.json").write_text(content)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(tmp_path)
    assert str(info.value).startswith(str(path.parent / "latest.json"))
    assert message in str(info.value)


def test_checkpoint_errors_are_dw2v_errors_with_exit_code_1() -> None:
    assert issubclass(CheckpointError, Dw2vError) and CheckpointError.exit_code == 1
