"""Export formats, reading other tools' files, search, the ANN index and evaluation."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

import dw2v
from dw2v.cli import main
from dw2v.embeddings import Embeddings
from dw2v.errors import InputError
from dw2v.export import export
from dw2v.search import BACKENDS, DEFAULT_BACKEND, AnnIndex

gensim_models = pytest.importorskip("gensim.models")
KeyedVectors = gensim_models.KeyedVectors


def _embeddings(n: int = 300, dim: int = 16, seed: int = 0) -> Embeddings:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n - 2)] + ["naïve", "über"]
    return Embeddings(words, rng.normal(size=(n, dim)).astype(np.float32),
                      np.arange(n, 0, -1, dtype=np.int64) * 10, {"settings": {"x": 1}})


@pytest.fixture(scope="module")
def trained(sample_dir: Path, client1: Client, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("vectors") / "model"
    config = dw2v.RunConfig(train=dw2v.TrainConfig(vector_size=32, epochs=1))
    dw2v.train([str(sample_dir)], out, config, client=client1)
    return out


# ------------------------------------------------------------------ formats

@pytest.mark.parametrize("fmt,binary", [("word2vec-text", False), ("word2vec-binary", True)])
def test_gensim_reads_our_word2vec_files_with_identical_vectors(tmp_path: Path, fmt: str,
                                                                binary: bool) -> None:
    emb = _embeddings()
    path = tmp_path / "v.bin"
    export(emb, path, fmt)
    kv = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert kv.index_to_key == emb.words
    np.testing.assert_array_equal(kv.vectors, emb.vectors)
    back = dw2v.load(path)  # format detected
    assert back.words == emb.words
    np.testing.assert_array_equal(back.vectors, emb.vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_we_read_gensim_written_files(tmp_path: Path, binary: bool) -> None:
    emb = _embeddings(seed=3)
    kv = KeyedVectors(emb.vectors.shape[1])
    kv.add_vectors(emb.words, emb.vectors)
    path = tmp_path / "gensim.w2v"
    kv.save_word2vec_format(str(path), binary=binary)  # binary: no newline after vectors
    back = dw2v.load(path)
    assert back.words == emb.words
    np.testing.assert_array_equal(back.vectors, emb.vectors)


def test_we_read_fasttext_vec_files(tmp_path: Path) -> None:
    path = tmp_path / "wiki.vec"
    # fastText writes a space after the last number of each line
    path.write_text("2 3\nthe 0.1 -0.2 0.3 \nof 1 2 3 \n", encoding="utf-8")
    emb = dw2v.load(path)
    assert emb.words == ["the", "of"]
    np.testing.assert_array_equal(emb.vectors, np.array([[0.1, -0.2, 0.3], [1, 2, 3]],
                                                        np.float32))


def test_parquet_export_round_trips_schema_and_metadata(tmp_path: Path) -> None:
    emb = _embeddings()
    path = tmp_path / "vectors.parquet"
    export(emb, path, "parquet", normalize=True, limit=100)
    table = pq.read_table(path)
    assert table.schema.field("token").type == pa.string()
    assert table.schema.field("id").type == pa.int32()
    assert table.schema.field("count").type == pa.int64()
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 16)
    meta = table.schema.metadata
    assert meta[b"dw2v.dim"] == b"16" and meta[b"dw2v.normalized"] == b"true"
    assert json.loads(meta[b"dw2v.settings"]) == {"x": 1}
    back = dw2v.load(path)
    assert back.words == emb.words[:100]
    np.testing.assert_array_equal(back.counts, emb.counts[:100])
    np.testing.assert_allclose(back.vectors, emb.unit[:100], rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(back.vectors, axis=1), 1, rtol=1e-5)


def test_npy_export_writes_the_matrix_and_its_tokens(tmp_path: Path) -> None:
    emb = _embeddings()
    files = export(emb, tmp_path / "v.npy", "npy", limit=5)
    np.testing.assert_array_equal(np.load(files[0]), emb.vectors[:5])
    assert files[1].read_text(encoding="utf-8").splitlines() == emb.words[:5]


def test_an_existing_export_is_not_replaced_without_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("keep me")
    with pytest.raises(dw2v.Dw2vError, match="exists"):
        export(_embeddings(), path, "word2vec-text")
    # --overwrite replaces a vectors file of the format, never a file of the user's
    with pytest.raises(dw2v.Dw2vError, match="replaces only a vectors file"):
        export(_embeddings(), path, "word2vec-text", overwrite=True)
    assert path.read_text() == "keep me"
    path.write_text("2 3\na 1 2 3\nb 1 2 3\n")
    export(_embeddings(), path, "word2vec-text", overwrite=True)
    assert path.read_text().startswith("300 16\n")
    # a tokens file is dw2v's only beside the matrix it names
    (tmp_path / "w.tokens.txt").write_text("my own word list\n")
    with pytest.raises(dw2v.Dw2vError, match="replaces only a vectors file"):
        export(_embeddings(), tmp_path / "w.npy", "npy", overwrite=True)
    assert (tmp_path / "w.tokens.txt").read_text() == "my own word list\n"
    assert not (tmp_path / "w.npy").exists()
    for fmt, name in (("parquet", "v.parquet"), ("npy", "v.npy"), ("word2vec-binary", "v.bin")):
        export(_embeddings(), tmp_path / name, fmt)
        export(_embeddings(), tmp_path / name, fmt, overwrite=True)  # its own: replaced
        with pytest.raises(dw2v.Dw2vError, match="replaces only a vectors file"):
            export(_embeddings(), tmp_path / name,
                   "word2vec-text" if fmt != "word2vec-text" and fmt != "word2vec-binary"
                   else "parquet", overwrite=True)


# ------------------------------------------------------------------ bad vectors files

@pytest.mark.parametrize("content,message", [
    (b"2 3\nthe 0.1 0.2 0.3\nof 0.1 0.2\n", "line 3: expected a word and 3 numbers, found 2"),
    (b"2 3\nthe 0.1 0.2 0.3\nof 0.1 zz 0.3\n", "line 3: a value is not a number"),
    (b"3 3\nthe 0.1 0.2 0.3\nof 0.4 0.5 0.6\n", "line 4: the file ends after 2 of 3 words"),
    (b"3 3\nthe 0.1 0.2 0.3\n", "line 1: the header claims 3 words of dimension 3, which need "
                                r"at least 23 bytes after the header, but the file has 16"),
    (b"1000000000000 3\nthe 0.1 0.2 0.3\n", "line 1: the header claims 1,000,000,000,000 words"),
    (b"1 1000000000\nthe 0.1 0.2 0.3\n", "line 1: the header claims 1 word of dimension "
                                         "1,000,000,000"),
    (b"2 3\nthe 0.1 0.2 0.3\nof 0.1 0..2 0.3\n", r"line 3: a value is not a number \('0..2'\)"),
    (b"hello world\n", "line 1: expected a header 'COUNT DIM'"),
    (b"0 3\n", "holds no words"),
])
def test_malformed_vectors_files_name_the_line_and_the_cause(tmp_path: Path, content: bytes,
                                                             message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        dw2v.load(path)
    assert str(path) in str(info.value)


def test_a_truncated_binary_file_names_the_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(b"2 2\nthe " + struct.pack("<2f", 1, 2) + b"\nofxxxx " + b"\x00\x00\x80")
    with pytest.raises(InputError, match=r"record 2 \('ofxxxx'\): the file ends after 3 of "
                                         "its 8"):
        dw2v.load(path, binary=True)


@pytest.mark.parametrize("header,message", [
    (b"2 2", "the header claims 2 words of dimension 2, which need at least 20 bytes after the "
             "header, but the file has 19"),
    (b"1000000000000 2", "the header claims 1,000,000,000,000 words"),
    (b"2 1000000000", "the header claims 2 words of dimension 1,000,000,000"),
])
def test_a_binary_header_claiming_more_than_the_file_holds_is_refused_before_reading(
        tmp_path: Path, header: bytes, message: str) -> None:
    path = tmp_path / "bad.bin"
    path.write_bytes(header + b"\nthe " + struct.pack("<2f", 1, 2) + b"\nof " + b"\x00\x00\x80")
    with pytest.raises(InputError, match=rf"bad\.bin: line 1: {message}"):
        dw2v.load(path, binary=True)
    with pytest.raises(InputError, match=r"line 1: the header claims"):  # and with a limit
        dw2v.load(path, binary=True, limit=2)


def test_nan_in_a_vectors_file_is_refused_with_the_rows_counted(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("3 2\nthe 0.1 nan\nof inf 1\nand 1 2\n")
    with pytest.raises(InputError, match=r"v\.txt: 2 rows hold NaN or inf \(the first: row 0, "
                                         r"'the'\)"):
        dw2v.load(path)
    emb = _embeddings(n=10)
    emb.vectors[4, 1] = np.inf
    export(emb, tmp_path / "v.parquet", "parquet")
    with pytest.raises(InputError, match=r"v\.parquet: 1 row holds NaN or inf"):
        dw2v.load(tmp_path / "v.parquet")


def test_cli_reports_a_malformed_file_with_exit_code_1(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"1 3\nthe 0.1 0.2\n")
    assert main(["similar", str(path), "the"]) == 1
    assert "line 2: expected a word and 3 numbers, found 2" in capsys.readouterr().err


# ------------------------------------------------------------------ search

def test_most_similar_and_analogy_match_gensim() -> None:
    emb = _embeddings(n=500, dim=20, seed=7)
    kv = emb.to_gensim()
    assert kv.get_vecattr("w0", "count") == emb.counts[0]
    ours = emb.most_similar("w3", topn=10)
    theirs = kv.most_similar("w3", topn=10)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    ours = emb.analogy("w1", "w2", "w3", topn=5)
    theirs = kv.most_similar(positive=["w2", "w3"], negative=["w1"], topn=5)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    by_vector = emb.most_similar(emb.vector("w3"), topn=1)
    assert by_vector[0][0] == "w3" and by_vector[0][1] == pytest.approx(1.0, abs=1e-5)


def test_the_keyed_vectors_surface_matches_gensim() -> None:
    """What a gensim user reaches for first, against gensim's KeyedVectors on the same
    vectors: item access, the index maps, normed vectors, similarity, n_similarity,
    doesnt_match, and most_similar with positive/negative words, vectors, weights,
    restrict_vocab and topn=None."""
    emb = _embeddings(n=400, dim=12, seed=3)
    kv = emb.to_gensim()
    np.testing.assert_array_equal(emb["w3"], kv["w3"])
    np.testing.assert_array_equal(emb[["w1", "w5"]], kv[["w1", "w5"]])
    assert emb.key_to_index == kv.key_to_index and emb.index_to_key == kv.index_to_key
    assert emb.vector_size == kv.vector_size and emb.get_index("nope", -1) == -1
    np.testing.assert_allclose(emb.get_vector("w7", norm=True), kv.get_vector("w7", norm=True),
                               atol=1e-6)
    assert emb.similarity("w1", "w2") == pytest.approx(float(kv.similarity("w1", "w2")), abs=1e-6)
    assert emb.n_similarity(["w1", "w2"], ["w3", "w9"]) == pytest.approx(
        float(kv.n_similarity(["w1", "w2"], ["w3", "w9"])), abs=1e-6)
    for words in (["w1", "w2", "w3", "w4"], ["w10", "w20", "w30", "nope"]):
        assert emb.doesnt_match(words) == kv.doesnt_match(words)
    queries = [dict(positive=["w2", "w3"], negative=["w1"], topn=7),
               dict(positive=[("w2", 2.0), "w3"], negative=[("w1", -0.5)], topn=4),
               dict(positive=["w4", emb["w8"]], topn=5),
               dict(positive="w5", topn=6, restrict_vocab=50),
               dict(negative=["w6"], topn=3)]
    for query in queries:
        ours, theirs = emb.most_similar(**query), kv.most_similar(**query)
        assert [w for w, _ in ours] == [w for w, _ in theirs], query
        np.testing.assert_allclose([x for _, x in ours], [x for _, x in theirs], atol=1e-5)
    np.testing.assert_allclose(emb.most_similar("w5", topn=None),
                               kv.most_similar("w5", topn=None), atol=1e-5)
    assert emb.similar_by_word("w2", 3) == emb.most_similar("w2", topn=3)
    assert [w for w, _ in emb.similar_by_vector(emb["w2"], 3)] == [
        w for w, _ in kv.similar_by_vector(kv["w2"], 3)]
    with pytest.raises(TypeError, match=r"most_similar\(word, 5\): the second argument is "
                                        r"negative \(gensim's order\); .* topn=5"):
        emb.most_similar("w3", 5)


def test_queries_are_lowercased_as_training_was(trained: Path) -> None:
    emb = dw2v.load(trained)
    assert emb.lowercase and "LORD" in emb and emb.get_index("Lord") == emb.get_index("lord")
    np.testing.assert_array_equal(emb["Lord"], emb["lord"])
    assert emb.most_similar("Lord", topn=5) == emb.most_similar("lord", topn=5)
    assert emb.similarity("God", "LORD") == emb.similarity("god", "lord")
    raw = Embeddings(["Lord", "lord"], np.eye(2, dtype=np.float32), np.ones(2, np.int64))
    assert not raw.lowercase and raw.get_index("LORD") is None  # a plain file: as written


def test_unknown_words_and_bad_queries_are_clear_errors(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    emb = _embeddings()
    with pytest.raises(KeyError, match="'nope' is not in the vocabulary"):
        emb.most_similar("nope")
    with pytest.raises(ValueError, match=r"shape \(16,\)"):
        emb.most_similar(np.zeros(3))
    path = tmp_path / "v.txt"
    export(emb, path, "word2vec-text")
    assert main(["similar", str(path), "nope"]) == 2
    assert "'nope' is not in the vocabulary" in capsys.readouterr().err


@pytest.mark.parametrize("backend", BACKENDS)
def test_ann_recall_at_10_on_a_trained_model(trained: Path, tmp_path: Path,
                                             backend: str) -> None:
    pytest.importorskip({"hnswlib": "hnswlib", "faiss": "faiss",
                         "usearch": "usearch.index"}[backend])
    emb = dw2v.load(trained)
    index = AnnIndex.build(emb, backend)
    index.save(tmp_path / "index")
    index = AnnIndex.load(tmp_path / "index", emb)
    queries = emb.unit[:: max(len(emb) // 1000, 1)]
    exact = np.argsort(-(queries @ emb.unit.T), axis=1)[:, :10]
    found, sims = index.query(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact)])
    assert recall >= 0.95, f"{backend}: recall@10 {recall:.3f}"
    # approximate: nearly every query finds itself first, with cosine 1
    assert np.mean(np.abs(sims[:, 0] - 1.0) < 1e-4) >= 0.99


def test_similar_uses_the_index_and_refuses_a_stale_one(trained: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    assert main(["index", str(trained)]) == 0
    capsys.readouterr()
    assert main(["similar", str(trained), "lord", "king", "-k", "5", "--json"]) == 0
    with_index = json.loads(capsys.readouterr().out)
    assert main(["similar", str(trained), "lord", "king", "-k", "5", "--json", "--exact"]) == 0
    exact = json.loads(capsys.readouterr().out)
    for word in ("lord", "king"):
        assert len(with_index[word]) == 5
        assert {n["word"] for n in with_index[word]} & {n["word"] for n in exact[word]}
    assert main(["analogy", str(trained), "king", "queen", "man", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["king queen man"]) == 10
    other = tmp_path / "other.txt"
    export(dw2v.load(trained), other, "word2vec-text", limit=50)
    assert main(["similar", str(other), "lord", "--index", str(trained / "index")]) == 1
    assert "built from other vectors" in capsys.readouterr().err
    assert DEFAULT_BACKEND in json.loads((trained / "index" / "index.json").read_text())[
        "backend"]


# ------------------------------------------------------------------ evaluation

def _eval_files(tmp_path: Path, emb: Embeddings) -> tuple[Path, Path]:
    rng = np.random.default_rng(11)
    pairs = ["# a comment", "# Word 1\tWord 2\tHuman (mean)"]
    for _ in range(200):
        a, b = rng.choice(emb.words[:250], 2, replace=False)
        pairs.append(f"{a.upper() if rng.random() < 0.2 else a}\t{b}\t{rng.uniform(0, 10):.2f}")
    pairs += ["missing\tw1\t3.0", "w2\tabsent\t4.0", "not a valid line"]
    sim = tmp_path / "pairs.tsv"
    sim.write_text("\n".join(pairs) + "\n", encoding="utf-8")
    lines = []
    for section in ("capital-world", "family", "gram1-adjective-to-adverb"):
        lines.append(f": {section}")
        for _ in range(150):
            lines.append(" ".join(rng.choice(emb.words, 4, replace=False)))
        lines.append("w1 w2 w3 unknownword")
    ana = tmp_path / "questions.txt"
    ana.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sim, ana


def test_eval_equals_gensim_evaluators(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    emb = _embeddings(n=300, dim=12, seed=5)
    sim, ana = _eval_files(tmp_path, emb)
    kv = emb.to_gensim()
    model = tmp_path / "model.bin"
    export(emb, model, "word2vec-binary")
    assert main(["eval", str(model), "--similarity", str(sim), "--analogies", str(ana),
                 "--restrict-vocab", "280", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ours = report["similarity"][str(sim)]
    pearson, spearman, oov = kv.evaluate_word_pairs(str(sim), restrict_vocab=280)
    assert ours["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert ours["pearson"] == pytest.approx(pearson.statistic, abs=1e-6)
    assert ours["oov"] * 100 == pytest.approx(oov, abs=1e-6)
    score, sections = kv.evaluate_word_analogies(str(ana), restrict_vocab=280)
    ours = report["analogies"][str(ana)]
    assert ours["accuracy"] == pytest.approx(score, abs=1e-6)
    total = next(s for s in sections if s["section"] == "Total accuracy")
    assert ours["correct"] == len(total["correct"])
    assert ours["total"] == len(total["correct"]) + len(total["incorrect"])
    for mine in ours["sections"]:
        theirs = next(s for s in sections if s["section"] == mine["name"])
        assert mine["correct"] == len(theirs["correct"])
        assert mine["total"] == len(theirs["correct"]) + len(theirs["incorrect"])


def test_eval_needs_a_file_and_names_a_missing_one(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.txt"
    export(_embeddings(), model, "word2vec-text")
    assert main(["eval", str(model)]) == 2
    assert "at least one --similarity or --analogies" in capsys.readouterr().err
    assert main(["eval", str(model), "--similarity", str(tmp_path / "none.tsv")]) == 1
    assert "none.tsv" in capsys.readouterr().err


def test_dimension_mismatch_between_header_and_rows_is_named(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("2 4\nthe 1 2 3 4\nof 1 2 3 4 5\n")
    with pytest.raises(InputError, match="line 3: expected a word and 4 numbers, found 5"):
        dw2v.load(path)


def test_word2vec_export_refuses_words_it_cannot_hold(tmp_path: Path) -> None:
    """A custom --token-pattern can make a word with a space, which a word2vec file would
    split; the export names it and writes nothing (Parquet holds it)."""
    emb = dw2v.Embeddings(["new york", "paris"], np.ones((2, 3), np.float32),
                          np.array([2, 1]))
    for fmt in ("word2vec-text", "word2vec-binary"):
        with pytest.raises(dw2v.Dw2vError, match=r"1 of the words hold whitespace .*'new york'"):
            export(emb, tmp_path / "v.txt", fmt)
    assert not any(tmp_path.iterdir())
    export(emb, tmp_path / "v.parquet", "parquet")
    assert dw2v.load(tmp_path / "v.parquet").words == ["new york", "paris"]


def test_dw2v_eval_at_its_defaults_equals_gensim_on_a_trained_model(
        trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``dw2v eval`` with no options against gensim's ``evaluate_word_pairs`` and
    ``evaluate_word_analogies`` at theirs, on a model trained on the sample corpus (the
    WordSim-353 and Google analogy files gensim ships as its test data)."""
    from gensim.test.utils import datapath

    pairs, questions = datapath("wordsim353.tsv"), datapath("questions-words.txt")
    assert main(["eval", str(trained), "--similarity", pairs, "--analogies", questions,
                 "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    kv = dw2v.load(trained).to_gensim()
    pearson, spearman, oov = kv.evaluate_word_pairs(pairs)
    accuracy, sections = kv.evaluate_word_analogies(questions)
    similarity = ours["similarity"][pairs]
    assert similarity["spearman"] == pytest.approx(spearman.statistic, abs=1e-6)
    assert similarity["pearson"] == pytest.approx(pearson.statistic, abs=1e-6)
    assert similarity["oov"] * 100 == pytest.approx(oov, abs=1e-6)
    analogies = ours["analogies"][questions]
    total = next(s for s in sections if s["section"] == "Total accuracy")
    assert analogies["correct"] == len(total["correct"]) > 0
    assert analogies["total"] == len(total["correct"]) + len(total["incorrect"])
    assert analogies["accuracy"] == pytest.approx(accuracy)
