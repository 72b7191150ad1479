"""Settings are validated once, and the error names the field and the value."""

from __future__ import annotations

import dataclasses

import pytest

from dw2v.config import ClusterConfig, IngestConfig, TokenizerConfig, VocabConfig, to_dict
from dw2v.errors import ConfigError


@pytest.mark.parametrize("factory,message", [
    (lambda: VocabConfig(min_count=0), "min_count=0"),
    (lambda: VocabConfig(sample=2), "sample=2"),
    (lambda: VocabConfig(sample=-0.1), "sample=-0.1"),
    (lambda: VocabConfig(max_vocab_size=0), "max_vocab_size=0"),
    (lambda: VocabConfig(max_final_vocab=-3), "max_final_vocab=-3"),
    (lambda: IngestConfig(text_column=""), "text_column=''"),
    (lambda: IngestConfig(batch_size=0), "batch_size=0"),
    (lambda: TokenizerConfig(pattern="(unclosed"), "not a valid regex"),
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
