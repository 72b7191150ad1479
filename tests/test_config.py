"""Settings are validated once, and the error names the field and the value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dw2v.config import (ClusterConfig, IngestConfig, TokenizerConfig, TrainConfig, VocabConfig,
                         to_dict)
from dw2v.errors import ConfigError


@pytest.mark.parametrize("factory,message", [
    (lambda: VocabConfig(min_count=0), "min_count=0"),
    (lambda: VocabConfig(sample=2), "sample=2"),
    (lambda: VocabConfig(sample=-0.1), "sample=-0.1"),
    (lambda: VocabConfig(max_vocab_size=0), "max_vocab_size=0"),
    (lambda: VocabConfig(max_final_vocab=-3), "max_final_vocab=-3"),
    (lambda: IngestConfig(text_column=""), "text_column=''"),
    (lambda: IngestConfig(batch_size=0), "batch_size=0"),
    (lambda: TokenizerConfig(pattern="(unclosed"), "not a valid RE2 regex"),
    (lambda: TokenizerConfig(max_sentence_length=1), "max_sentence_length=1"),
    (lambda: ClusterConfig(scheduler="tcp://a:1", scheduler_file="f"), "not both"),
    (lambda: ClusterConfig(scheduler="tcp://a:1", n_workers=2), "LocalCluster"),
    (lambda: ClusterConfig(n_workers=0), "n_workers=0"),
])
def test_invalid_settings_are_refused_with_the_field_named(factory, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        factory()


def test_configs_are_frozen_and_serialisable() -> None:
    config = IngestConfig(storage_options={"key": "secret"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.batch_size = 3  # type: ignore[misc]
    as_dict = to_dict(config)
    assert as_dict["storage_options"] == ["key"]  # keys only: values may be credentials
    assert as_dict["tokenizer"]["lowercase"] is True


# ------------------------------------------------------------------ TOML settings files

def _print_config(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    from dw2v.cli import main

    assert main(["train", *args, "--print-config"]) == 0
    return capsys.readouterr().out


def test_print_config_round_trips_and_flags_override_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    first = _print_config(["in/a", "in/b", "-o", "out", "--dim", "50", "--no-dashboard",
                           "--storage-option", "anon=true", "--max-final-vocab", "9",
                           "--no-scale-lr"], capsys)
    settings = tomllib.loads(first)
    assert settings["inputs"] == ["in/a", "in/b"] and settings["output"] == "out"
    assert settings["train"]["vector_size"] == 50 and settings["train"]["scale_lr"] is False
    assert settings["ingest"]["storage_options"] == {"anon": "true"}
    path = tmp_path / "run.toml"
    path.write_text(first)
    assert _print_config(["--config", str(path)], capsys) == first
    # a flag beats the file, even when it gives the default value; the file beats defaults
    again = tomllib.loads(_print_config(["--config", str(path), "--window", "3", "--dim", "100",
                                         "-o", "elsewhere"], capsys))
    assert again["train"]["window"] == 3 and again["train"]["vector_size"] == 100
    assert again["output"] == "elsewhere" and again["vocab"]["max_final_vocab"] == 9
    assert again["cluster"]["dashboard_address"] == ""


@pytest.mark.parametrize("content,message", [
    ("[train]\nvector_size = 0\n", "bad.toml: [train] vector_size = 0: must be at least 1"),
    ('[train]\nvector_size = "100"\n', 'bad.toml: [train] vector_size = "100": must be an '
                                        'integer'),
    ("[train]\nepochs = 2.5\n", "bad.toml: [train] epochs = 2.5: must be an integer"),
    ("[vocab]\nmin_count = true\n", "bad.toml: [vocab] min_count = true: must be an integer"),
    ("[train]\nalpha = \"fast\"\n", 'bad.toml: [train] alpha = "fast": must be a number'),
    ("[train]\nalpha = nan\n", "bad.toml: [train] alpha = nan: must be a finite number"),
    ("[ingest]\nlowercase = 1\n", "[ingest] has no setting 'lowercase'"),
    ("[ingest.tokenizer]\nlowercase = 1\n", "[ingest.tokenizer] lowercase = 1: must be true "
                                             "or false"),
    ("[ingest.tokenizer]\npattern = '(?=a)'\n", "pattern = \"(?=a)\": not a valid RE2 regex"),
    ("train = 5\n", "bad.toml: train must be a table ([train]), not int 5"),
    ("[ingest]\ntokenizer = 'x'\n", "ingest.tokenizer must be a table"),
    ("[ingest]\nstorage_options = 3\n", "[ingest] storage_options must be a table"),
    ("[ingest.storage_options]\nanon = true\n", "storage_options = { anon = true }: must be a "
                                                 "table of strings"),
    ("output = 3\n", "output must be a string"),
    ("[cluster]\ndashboard_address = 'nowhere'\n", "dashboard_address = \"nowhere\": must be "
                                                    "HOST:PORT"),
    ("[train]\ndimension = 10\n", "[train] has no setting 'dimension'"),
    ("[trian]\nwindow = 3\n", "unknown setting or table 'trian'"),
    ("[train\n", "not valid TOML"),
    ("inputs = 'one'\n", "inputs must be a list of strings"),
])
def test_bad_settings_files_name_the_file_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str) -> None:
    from dw2v.cli import main

    path = tmp_path / "bad.toml"
    path.write_text(content)
    assert main(["train", "x", "-o", str(tmp_path / "o"), "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not (tmp_path / "o").exists()


def test_every_cli_setting_is_named_and_defaulted_by_its_dataclass_field() -> None:
    """One place for the settings' names: each option of ``dw2v train`` that sets a setting
    has the destination ``table.field`` of the ``--config`` file and the dataclasses, and
    the dataclass's default."""
    from dw2v import config_file
    from dw2v.cli import _subparser, build_parser

    parser = _subparser(build_parser(), "train")
    settings = [a for a in parser._actions if "." in a.dest]
    assert len({a.dest for a in settings}) >= 38
    tables = {"ingest": IngestConfig, "ingest.tokenizer": TokenizerConfig,
              "vocab": VocabConfig, "train": TrainConfig, "cluster": ClusterConfig}
    for action in settings:
        table, name = config_file.field_of(action.dest)
        field = {f.name: f for f in dataclasses.fields(tables[table])}[name]
        default = (field.default if field.default is not dataclasses.MISSING
                   else field.default_factory())
        if name == "storage_options":  # repeated KEY=VALUE pairs, made a table
            assert action.default == [] and default == {}
        else:
            assert action.default == default, action.dest
    assert not hasattr(config_file, "CLI_FIELDS")
