"""Output directories that appear whole or not at all, and that never replace what is not dw2v's.

The rules (README, "Never lose what the user has"):

- An output may replace an existing directory only if it is empty or holds nothing but dw2v
  output (the names a model, vocabulary or index directory holds), and only with
  ``--overwrite``; an output equal to, inside or above an input is refused.
- A job writes into a staging directory beside its output and swaps it into place only once
  every file is written and synced; on a failure the old output is exactly as it was.
- One job at a time per output: a lock file beside it (``.NAME.dw2v-lock``), held for the
  whole job and released by the kernel when the process ends, so a crash leaves no stale lock;
  it is removed when the job ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import fnmatch
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

from dw2v.errors import ConfigError, OutputExistsError

#: Every name dw2v writes into a model, vocabulary or index directory; its temporaries are
#: ``.NAME.tmp-…``. A directory holding anything else is not replaced.
DW2V_NAMES = frozenset({
    "vectors.npy", "output_vectors.npy", "model.json", "vocab.parquet", "vocab_report.json",
    "report.html", "report", "index", "work", "checkpoints",
    "index.json", "tokens.txt", "index.faiss", "index.hnswlib", "index.usearch",
})
#: What dw2v writes inside its subdirectories (fnmatch patterns), so that a user's file put
#: in one, or a folder of the user's that only shares a name ("checkpoints"), is never
#: taken for dw2v's.
INSIDE = {
    "work": ("manifest.json", "shard-[0-9][0-9][0-9][0-9][0-9]"),
    "checkpoints": ("latest.json", "round-[0-9][0-9][0-9][0-9][0-9]"),
    "report": ("*.svg", "*.png"),  # PNG: the figures of models written by earlier dw2v
    "index": tuple(DW2V_NAMES),
}
#: The files that mark a directory as dw2v's own (one of them must be there).
MARKERS = ("model.json", "vocab.parquet", "index.json", "checkpoints/latest.json")


def _is_dw2v_name(name: str) -> bool:
    """A name dw2v writes, or one of its temporaries (``.NAME.tmp-…``)."""
    return name in DW2V_NAMES or (name.startswith(".") and ".tmp-" in name)


def foreign_entries(path: Path) -> list[str]:
    """The entries of directory ``path`` that dw2v did not write (empty: all are dw2v's),
    looking one level into the subdirectories dw2v writes."""
    foreign = []
    for entry in sorted(path.iterdir(), key=lambda p: p.name):
        if not _is_dw2v_name(entry.name):
            foreign.append(entry.name)
        elif entry.name in INSIDE and entry.is_dir():
            foreign += [f"{entry.name}/{p.name}" for p in sorted(entry.iterdir())
                        if not (p.name.startswith(".") and ".tmp-" in p.name)
                        and not any(fnmatch.fnmatchcase(p.name, pattern)
                                    for pattern in INSIDE[entry.name])]
    return foreign


def check_output_dir(path: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty directory (or a file) unless ``overwrite``, and with
    ``overwrite`` refuse one that holds anything dw2v did not write."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a directory; dw2v replaces only "
                                "its own output directories")
    entries = list(path.iterdir())
    if not entries:
        return
    if not overwrite:
        raise OutputExistsError(f"{path}: output directory exists and is not empty; "
                                "pass --overwrite to replace it")
    foreign = foreign_entries(path)
    if foreign or not any((path / m).exists() for m in MARKERS):
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                          else "")
        raise OutputExistsError(
            f"{path}: --overwrite replaces only dw2v's own output, and this directory holds "
            f"{'files dw2v did not write: ' + shown if foreign else 'no dw2v output'}; "
            "choose another output directory or move them")


def _local(url: str) -> Path | None:
    """The local path of an input (globs cut at their first wildcard), or None for a URL."""
    if "://" in url and not url.startswith("file://"):
        return None
    text = url.removeprefix("file://")
    parts = Path(text).parts
    for i, part in enumerate(parts):
        if any(ch in part for ch in "*?["):
            parts = parts[:i]
            break
    return Path(*parts).resolve() if parts else Path.cwd().resolve()


def check_not_overlapping(output: Path, inputs: Iterable[str], *, option: str = "-o",
                          allow_inside: Iterable[str] = (), allow_equal: Iterable[str] = ()
                          ) -> None:
    """Refuse an output that is an input, lies inside one, or holds one (exit 2, naming both):
    replacing it would delete the input. ``allow_inside`` / ``allow_equal``: inputs an output
    may lie inside (an index in its model) or be (a model trained again in place, staged)."""
    out = output.resolve()
    inside_ok = {str(_local(u)) for u in allow_inside}
    equal_ok = {str(_local(u)) for u in allow_equal}
    for url in inputs:
        path = _local(url)
        if path is None:
            continue
        if out == path and str(path) not in equal_ok:
            problem = "is the input"
        elif path in out.parents and str(path) not in inside_ok:
            problem = "lies inside the input"
        elif out in path.parents:
            problem = "holds the input"
        else:
            continue
        raise ConfigError(f"{option} {output}: the output {problem} {url}; writing there could "
                          "destroy the input; choose an output directory outside it")


def check_writable(path: Path, option: str = "-o") -> None:
    """Refuse an output whose nearest existing parent cannot be written (read-only file system,
    no permission), before any work starts."""
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is not a directory")
    readonly = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
    if readonly or not os.access(parent, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if readonly else "is not writable"
        raise ConfigError(f"{option} {path}: cannot write the output: {parent} {why}")


def staging_dir(target: Path) -> Path:
    """Where a training run into ``target`` builds its model (work files and checkpoints
    included): beside it, swapped into its place only when the model is complete."""
    return target.parent / f".{target.name}.dw2v-partial"


def lock_path(target: Path) -> Path:
    return target.parent / f".{target.name}.dw2v-lock"


@contextmanager
def output_lock(target: Path, option: str = "-o") -> Iterator[None]:
    """Hold the output's lock for the block; refuse at once when another job holds it.

    An ``flock`` on ``.NAME.dw2v-lock`` beside the output: the kernel drops it when the
    process dies, so a crash leaves no stale lock. The file is removed when the job ends (the
    holder unlinks it while it still holds the lock, and a job that locked a file that was
    unlinked meanwhile tries again), so no lock file stays beside the user's output; filelock,
    which leaves the file, does not do this."""
    made = _make_parents(target.parent, option, target)
    path = lock_path(target)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            _remove_empty(made)
            raise ConfigError(f"{option} {target}: cannot write the output "
                              f"({exc.strerror or exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip()
            os.close(fd)
            raise OutputExistsError(
                f"{target}: another dw2v job{' (pid ' + holder + ')' if holder else ''} is "
                f"writing this output (it holds {path}); wait for it to end or choose another "
                "output") from None
        mine = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev):
            break
        os.close(fd)  # its holder removed it while this job opened it: take the new one
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)
        if not target.exists():
            _remove_empty(made)


def _make_parents(parent: Path, option: str, target: Path) -> list[Path]:
    """Create the missing parents of an output; return them, outermost last."""
    made = []
    p = parent
    while not p.exists():
        made.append(p)
        p = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {target}: cannot create {parent} "
                          f"({exc.strerror or exc})") from None
    return made


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:  # innermost first
        try:
            d.rmdir()
        except OSError:
            return


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (and ``root``), so a swap that follows
    publishes data that is on the disk."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def fsync_dir(path: Path) -> None:
    """fsync a directory, so the names just created or renamed in it are on the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where
    the system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap_into_place(stage: Path, target: Path) -> None:
    """Make the complete directory ``stage`` the output ``target``; the old ``target`` (if
    any) is removed only after the new one is in place. Synced before and after."""
    fsync_tree(stage)
    if target.exists():
        if _exchange(stage, target):  # stage now holds the old output
            fsync_dir(target.parent)
            shutil.rmtree(stage, ignore_errors=True)
            return
        old = target.parent / f".{target.name}.dw2v-old-{uuid.uuid4().hex[:12]}"
        os.rename(target, old)
        os.rename(stage, target)
        fsync_dir(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(stage, target)
        fsync_dir(target.parent)


def prepare_output(target: Path, overwrite: bool, inputs: Iterable[str] = (), *,
                   option: str = "-o", allow_inside: Iterable[str] = (),
                   allow_equal: Iterable[str] = ()) -> None:
    """The checks every writing command makes before any work: not an input, writable, and
    either new or replaceable (see :func:`check_output_dir`)."""
    check_not_overlapping(target, inputs, option=option, allow_inside=allow_inside,
                          allow_equal=allow_equal)
    check_writable(target, option)
    check_output_dir(target, overwrite)


@contextmanager
def staged_dir(path: str | Path, *, overwrite: bool = False,
               inputs: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a staging directory that becomes ``path`` when the block ends without error;
    the output is locked for the block and checked before and at the swap."""
    target = Path(path).absolute()
    inputs = list(inputs)
    prepare_output(target, overwrite, inputs)
    with output_lock(target):
        stage = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
        stage.mkdir()
        try:
            yield stage
            check_output_dir(target, overwrite)
            swap_into_place(stage, target)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


@contextmanager
def atomic_file(path: Path, *, overwrite: bool = False,
                ours: Callable[[Path], bool] = lambda _: False,
                what: str = "dw2v output") -> Iterator[Path]:
    """A temporary path beside the file ``path``, renamed onto it when the block succeeds and
    removed when it fails, so ``path`` appears whole or not at all; an existing ``path`` is
    replaced only with ``overwrite`` and only if ``ours(path)`` (it is ``what``)."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path}: is a directory")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass --overwrite to replace it")
    if path.exists() and not ours(path):
        raise OutputExistsError(f"{path}: --overwrite replaces only {what}, and this file is "
                                "not one; choose another output")
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced(path) as tmp:
        yield tmp


@contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """The one write-then-rename of dw2v's files: a temporary path beside ``path`` (hidden,
    so no reader takes it for the file), renamed onto ``path`` when the block succeeds and
    removed when it fails; ``path`` is never seen half-written."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
