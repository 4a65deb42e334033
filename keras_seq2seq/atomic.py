"""Writing a directory so that a kill at any moment leaves the previous version or nothing, never half."""

import contextlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def atomic_directory(target):
    """Yields a staging directory beside `target`; when the block ends normally, it replaces `target`.

    The staging directory (`.NAME.partial-PID`) and the previous version, moved aside
    while the new one is renamed in (`.NAME.previous-PID`), are in the same parent, so
    both moves are renames. A kill inside the block leaves `target` untouched; a kill
    between the two renames leaves no `target` (and both versions beside it, each whole).
    If the block raises, the staging directory is removed and `target` is untouched. The
    next write to `target` removes what a killed one left beside it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    previous = target.parent / f".{target.name}.previous-{os.getpid()}"
    # What killed writers left: their unfinished versions, and moved-aside versions that a
    # complete target has replaced (without a target, the moved-aside one is kept: it is whole).
    leftovers = list(target.parent.glob(f".{target.name}.partial-*"))
    if target.exists():
        leftovers += target.parent.glob(f".{target.name}.previous-*")
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():
        os.rename(target, previous)
    os.rename(staging, target)
    shutil.rmtree(previous, ignore_errors=True)
