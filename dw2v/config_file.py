"""Run settings in a TOML file: ``dw2v train --config run.toml``, and ``--print-config``.

The file has the shape ``--print-config`` writes: top-level ``inputs`` and ``output``, then one
table per settings dataclass with its field names (``[ingest]``, ``[ingest.tokenizer]``,
``[vocab]``, ``[train]``, ``[cluster]``). Flags given on the command line override the file;
the file overrides the defaults. Unknown tables or keys are errors that name the file.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import tomli_w

from dw2v.config import ClusterConfig, IngestConfig, TokenizerConfig, TrainConfig, VocabConfig
from dw2v.errors import ConfigError

_CLASSES = {"ingest": IngestConfig, "ingest.tokenizer": TokenizerConfig, "vocab": VocabConfig,
            "train": TrainConfig, "cluster": ClusterConfig}


def read(path: str | Path) -> dict[str, Any]:
    """The file's settings as ``{"inputs", "output", "ingest": {...}, ...}`` (validated keys)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    known = {"inputs", "output", *(t.split(".")[0] for t in _CLASSES)}
    for key in data:
        if key not in known:
            raise ConfigError(f"--config {path}: unknown setting or table {key!r}")
    for table in _CLASSES:
        node: Any = data
        for depth, part in enumerate(table.split(".")):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
            if not isinstance(node, dict):
                name = ".".join(table.split(".")[:depth + 1])
                raise ConfigError(f"--config {path}: {name} must be a table ([{name}]), not "
                                  f"{type(node).__name__} {node!r}")
    for table, cls in _CLASSES.items():
        values = _table(data, table)
        names = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in names and not (table == "ingest" and key == "tokenizer"):
                raise ConfigError(f"--config {path}: [{table}] has no setting {key!r} "
                                  f"(known: {', '.join(sorted(names - {'tokenizer'}))})")
    if "inputs" in data and not (isinstance(data["inputs"], list)
                                 and all(isinstance(x, str) for x in data["inputs"])):
        raise ConfigError(f"--config {path}: inputs must be a list of strings")
    if "output" in data and not isinstance(data["output"], str):
        raise ConfigError(f"--config {path}: output must be a string")
    options = _table(data, "ingest").get("storage_options")
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"--config {path}: [ingest] storage_options must be a table")
    return data


def field_of(dest: str) -> tuple[str, str] | None:
    """The (table, field) a command-line destination sets: the CLI's options are named
    ``table.field`` after the settings (``train.vector_size``); None for the others."""
    table, dot, name = dest.rpartition(".")
    return (table, name) if dot and table in _CLASSES else None


def default_of(dest: str) -> Any:
    """The dataclass's default of the field a destination (``train.vector_size``) sets."""
    where = field_of(dest)
    if where is None:
        raise KeyError(f"{dest}: not a settings field (table.field)")
    table, name = where
    for f in dataclasses.fields(_CLASSES[table]):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            return f.default_factory()  # type: ignore[misc]
    raise KeyError(f"{dest}: {_CLASSES[table].__name__} has no field {name!r}")


def tables_from(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Settings tables from the command line's values (``vars(args)``), by destination."""
    tables: dict[str, dict[str, Any]] = {table: {} for table in _CLASSES}
    for dest, value in values.items():
        where = field_of(dest)
        if where is not None:
            tables[where[0]][where[1]] = value
    if "storage_options" in tables["ingest"]:  # KEY=VALUE pairs, repeated
        tables["ingest"]["storage_options"] = dict(tables["ingest"]["storage_options"])
    return tables


def table_of_field(owner: str) -> str | None:
    """The file's table for a settings class name (``TrainConfig`` -> ``train``)."""
    return next((t for t, cls in _CLASSES.items() if cls.__name__ == owner), None)


def file_value(data: dict[str, Any], table: str, key: str) -> tuple[bool, Any]:
    """Whether the file sets ``[table] key``, and its value."""
    values = _table(data, table)
    return key in values, values.get(key)


def _table(data: dict[str, Any], table: str) -> dict[str, Any]:
    node: Any = data
    for part in table.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def merge(cli: dict[str, Any], explicit: set[str], file: dict[str, Any]) -> dict[str, Any]:
    """Settings tables from the command line (``cli``: table -> {field: value}), with the
    file's values where the command line did not set the field explicitly (``explicit``:
    the destinations it set)."""
    chosen = {field_of(d) for d in explicit} - {None}
    out = {table: dict(values) for table, values in cli.items()}
    for table in _CLASSES:
        for key, value in _table(file, table).items():
            if isinstance(value, dict) and not (table == "ingest" and key == "storage_options"):
                continue  # a sub-table ([ingest.tokenizer]) is handled on its own
            if (table, key) not in chosen:
                out[table][key] = value
    return out


def build(tables: dict[str, dict[str, Any]]) -> tuple[IngestConfig, VocabConfig, TrainConfig,
                                                      ClusterConfig]:
    """The settings dataclasses from merged tables (their validation applies)."""
    tables = {k: dict(v) for k, v in tables.items()}
    if tables["cluster"].get("dashboard_address") == "":
        tables["cluster"]["dashboard_address"] = None
    tokenizer = TokenizerConfig(**tables["ingest.tokenizer"])
    ingest = IngestConfig(**{k: v for k, v in tables["ingest"].items() if k != "tokenizer"},
                          tokenizer=tokenizer)
    return (ingest, VocabConfig(**tables["vocab"]), TrainConfig(**tables["train"]),
            ClusterConfig(**tables["cluster"]))


def tables_of(ingest: IngestConfig, vocab: VocabConfig, train: TrainConfig,
              cluster: ClusterConfig) -> dict[str, dict[str, Any]]:
    """The settings dataclasses as tables (the inverse of ``build``)."""
    ingest_values = {f.name: getattr(ingest, f.name) for f in dataclasses.fields(ingest)
                     if f.name != "tokenizer"}
    return {"ingest": ingest_values, "ingest.tokenizer": dataclasses.asdict(ingest.tokenizer),
            "vocab": dataclasses.asdict(vocab), "train": dataclasses.asdict(train),
            "cluster": dataclasses.asdict(cluster)}


def dumps(inputs: list[str], output: str | None, tables: dict[str, dict[str, Any]]) -> str:
    """The effective settings as TOML, in the shape ``read`` accepts (unset values omitted,
    except a dashboard turned off, written as an empty address)."""
    def clean(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    cluster = dict(tables["cluster"])
    if cluster.get("dashboard_address") is None:
        cluster["dashboard_address"] = ""
    ingest = clean(tables["ingest"])
    ingest["tokenizer"] = clean(tables["ingest.tokenizer"])
    doc: dict[str, Any] = {"inputs": list(inputs)}
    if output:
        doc["output"] = str(output)
    doc.update(ingest=ingest, vocab=clean(tables["vocab"]), train=clean(tables["train"]),
               cluster=clean(cluster))
    return "# dw2v train settings (dw2v train --config FILE reads this)\n" + tomli_w.dumps(doc)
