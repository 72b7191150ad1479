"""Output directories that appear whole or not at all.

A job writes into a hidden staging directory beside its output and renames it into place only
after everything succeeded; on any error the staging directory is removed. An existing
non-empty output is refused unless overwriting was asked for, and is replaced only at the end,
so a failed run never destroys the previous result.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dw2v.errors import OutputExistsError


def check_output_dir(path: Path, overwrite: bool) -> None:
    """Refuse an existing non-empty directory (or a file) unless ``overwrite``."""
    if not path.exists():
        return
    if not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a directory")
    if not overwrite and any(path.iterdir()):
        raise OutputExistsError(f"{path}: output directory exists and is not empty; "
                                "pass --overwrite to replace it")


@contextmanager
def staged_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory that becomes ``path`` when the block ends without error."""
    target = Path(path).absolute()
    check_output_dir(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    stage.mkdir()
    try:
        yield stage
        check_output_dir(target, overwrite)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(target, old)
            os.rename(stage, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(stage, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
