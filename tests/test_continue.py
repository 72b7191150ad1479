"""Continued training: ``--init-from`` extends a model's vocabulary with a new corpus's words,
keeps its vectors, and trains on; new words get sensible neighbours, old words keep theirs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from distributed import Client

import dw2v
from dw2v.config import TrainConfig
from dw2v.train import RunConfig
from dw2v.vocab import load as load_vocab

SETTINGS = dict(vector_size=32, epochs=5, sync_every=10**9, seed=4)
#: In the new corpus these words are spelled anew: the new spellings occur only there.
RENAMED = {"gold": "aurum", "silver": "argentum"}


def _renamed_corpus(sample_dir: Path, out: Path) -> Path:
    out.mkdir()
    for name in ("kjv-002.parquet", "kjv-003.parquet"):
        table = pq.read_table(sample_dir / name)
        text = pc.utf8_lower(table.column("text"))
        for old, new in RENAMED.items():
            text = pc.replace_substring_regex(text, rf"\b{old}\b", new)
        pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", text),
                       out / name)
    return out


@pytest.fixture(scope="module")
def models(sample_dir: Path, client1: Client,
           tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("continue")
    base = tmp / "base"
    config = RunConfig(train=TrainConfig(**SETTINGS, save_output_vectors=True))
    dw2v.train([str(sample_dir / "kjv-000.parquet"), str(sample_dir / "kjv-001.parquet")],
               base, config, client=client1)
    new_corpus = _renamed_corpus(sample_dir, tmp / "new")
    continued = tmp / "continued"
    # a gentler schedule than from scratch, as continued training usually takes: measured
    # (seed 4): 2 epochs at alpha 0.01 keep 0.68 of old words' top-10 neighbours, 5 epochs at
    # 0.025 keep 0.37; two models trained from scratch with seeds 4 and 5 share 0.56
    gentle = TrainConfig(**{**SETTINGS, "epochs": 2, "alpha": 0.01})
    dw2v.train([str(new_corpus)], continued, RunConfig(train=gentle), client=client1,
               init_from=base)
    return base, continued


def test_the_vocabulary_is_extended_and_old_rows_keep_their_ids(models: tuple[Path, Path]
                                                                ) -> None:
    base, continued = (load_vocab(m) for m in models)
    old = base.tokens.to_pylist()
    new = continued.tokens.to_pylist()
    assert new[:len(old)] == old  # the base words keep their ids
    assert set(RENAMED.values()) <= set(new[len(old):])  # the new words are appended
    assert all(continued.counts[: len(old)] >= base.counts)  # counts merged
    assert dw2v.load(models[1]).meta["init_from"] == str(models[0])


def test_new_words_get_sensible_neighbours_and_old_ones_stay_mostly(
        models: tuple[Path, Path]) -> None:
    base, continued = (dw2v.load(m) for m in models)
    neighbours = [w for w, _ in continued.most_similar("aurum", topn=10)]
    assert {"argentum", "brass", "iron", "copper", "silver"} & set(neighbours), neighbours
    words = [w for w in base.words[50:250]]
    overlap = np.mean([len({w for w, _ in base.most_similar(word, topn=10)}
                           & {w for w, _ in continued.most_similar(word, topn=10)}) / 10
                       for word in words])
    print(f"top-10 overlap of 200 old words: {overlap:.3f}")
    assert overlap >= 0.6  # above the 0.56 of two models trained from scratch


def test_settings_a_resume_does_not_use_are_named_as_the_caller_spells_them() -> None:
    """The CLI names them by its options (``--dim 50``), the Python API by the fields
    (``vector_size=50``); a setting at its default or equal to the checkpoint's is not one."""
    from dw2v.cli import train_flags
    from dw2v.config import TrainConfig, to_dict
    from dw2v.train import _changed_settings

    saved = to_dict(TrainConfig(vector_size=16, epochs=2))
    given = TrainConfig(vector_size=50, epochs=2, window=5, device="gpu")
    assert _changed_settings(given, saved, train_flags()) == ["--dim 50"]
    assert _changed_settings(given, saved, None) == ["vector_size=50"]
    assert _changed_settings(TrainConfig(vector_size=16, epochs=2), saved, None) == []
