"""Checks made before the cluster starts and before any file is read: the inputs' protocols,
and a scheduler file. Each failure is one clear line (a ConfigError, exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import fsspec
from fsspec.registry import known_implementations

from dw2v.config import ClusterConfig
from dw2v.errors import ConfigError

if TYPE_CHECKING:
    from distributed import Client

#: The dw2v extra that installs a protocol's filesystem, where dw2v defines one.
EXTRAS = {"s3": "s3", "s3a": "s3"}


def _protocols(url: str) -> list[str]:
    """The protocols of a (possibly chained, ``simplecache::s3://…``) URL; [] for a path."""
    if "://" not in url:
        return []
    out = []
    for part in url.split("::"):
        if "://" in part:
            out.append(part.split("://", 1)[0].lower())
        elif part and "/" not in part:
            out.append(part.lower())
    return out


def check_protocol(url: str, protocol: str) -> None:
    """Refuse an unknown protocol, or one whose filesystem package is not installed (naming
    the extra or package that provides it)."""
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise ConfigError(f"{url}: unknown protocol {protocol!r} (fsspec knows "
                          f"{', '.join(sorted(known_implementations)[:12])}, …)") from None
    except ImportError:
        extra = EXTRAS.get(protocol)
        hint = known_implementations.get(protocol, {}).get("err", "")
        how = (f"install dw2v's {extra!r} extra: pip install 'dw2v[{extra}]'" if extra
               else hint or "install the fsspec filesystem that provides it")
        raise ConfigError(f"{url}: reading {protocol}:// needs a package that is not "
                          f"installed; {how}") from None


def check_inputs(inputs: Sequence[str], *, in_process: bool) -> None:
    """Every input's protocol is known and installed; ``memory://`` only with workers in this
    process (``in_process``): a process of its own has an empty memory filesystem."""
    for url in inputs:
        for protocol in _protocols(url):
            check_protocol(url, protocol)
            if protocol == "memory" and not in_process:
                raise ConfigError(
                    f"{url}: a memory:// filesystem lives in one process, and the cluster's "
                    "workers are other processes that cannot see it; write the corpus to "
                    "files, or train from Python with an in-process cluster "
                    "(Client(processes=False))")


def check_scheduler_file(path: str) -> None:
    """A scheduler file must exist and name an address (Dask would wait for ever for it)."""
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"--scheduler-file {path}: no such file (Dask would wait for it "
                          "for ever); start the scheduler with --scheduler-file first, or "
                          "check the path")
    try:
        info = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--scheduler-file {path}: not a Dask scheduler file ({exc})") \
            from None
    if not isinstance(info, dict) or not isinstance(info.get("address"), str):
        raise ConfigError(f"--scheduler-file {path}: not a Dask scheduler file (no "
                          "'address')")


def check_run(inputs: Sequence[str], cluster: ClusterConfig, client: Client | None) -> None:
    """The checks of a job's inputs and cluster before it starts one: :func:`check_inputs`
    (``memory://`` only with a client whose workers run in this process) and, with no client
    given, :func:`check_scheduler_file`."""
    from dw2v.dask_cluster import workers_in_process

    check_inputs(inputs, in_process=client is not None and workers_in_process(client))
    if client is None and cluster.scheduler_file:
        check_scheduler_file(cluster.scheduler_file)
