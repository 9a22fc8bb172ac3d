"""Paths made from config values, and deletes that cannot reach beyond their folder.

Torch-free and small: the Snakefile imports it at parse time, the training code at run time.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from pathlib import Path

# A plain name: letters, digits, '_', '-' and '.', not starting with a dot. That refuses
# '.' and '..' (which name the folder itself or its parent: `experiment: ..` made
# archive/.. the folder that `snakemake archive` empties) and hidden names.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


class UnsafePathError(ValueError):
    """A config value would name a path outside its folder, or a delete would reach beyond
    the folder it is meant to clean."""


def check_plain_name(value, key: str) -> str:
    """``value`` if it is a plain name that stays inside the folder it is joined to (see
    PLAIN_NAME); else UnsafePathError naming ``key``."""
    if not isinstance(value, str) or not PLAIN_NAME.fullmatch(value):
        raise UnsafePathError(
            f"{key}: must be a plain name (letters, digits, '_', '-', '.', not starting with "
            f"a dot; no '/'), as it names a folder (got {value!r})"
        )
    return value


def safe_rmtree(target: str | os.PathLike, inside: str | os.PathLike, ignore_errors=False):
    """``shutil.rmtree(target)``, but only when ``target`` lies strictly inside ``inside``
    (both resolved, so '..' and symbolic links cannot lead out); else UnsafePathError,
    before anything is deleted. A ``target`` that does not exist is left alone."""
    real, root = Path(target).resolve(), Path(inside).resolve()
    if real == root or not real.is_relative_to(root):
        raise UnsafePathError(
            f"refusing to delete {target} ({real}): it is not strictly inside {inside} "
            f"({root}), the folder it is meant to clean"
        )
    if not os.path.lexists(target):
        return
    shutil.rmtree(target, ignore_errors=ignore_errors)


def path_number(x) -> str:
    """How a number appears in a path, exactly: '%g' where that reads back as the same float
    (0.1 → '0.1', 512 → '512', 0.0 → '0'), else the shortest text that does
    (0.1234567 → '0.1234567', not '%g''s 0.123457). The training rules read η, β and ε back
    from their paths, so a rounded path would train another value than the config's."""
    x = float(x)
    short = f"{x:g}"
    if float(short) == x:
        return short
    return repr(x).removesuffix(".0")  # repr: the shortest string that round-trips


@contextlib.contextmanager
def naming(path: str | os.PathLike):
    """Re-raise a failed write inside the block as an OSError that names ``path``: torch's
    writer says only "open file failed … Operation not permitted", without the file."""
    try:
        yield
    except (OSError, RuntimeError) as err:
        if str(path) in str(err):
            raise
        raise OSError(f"cannot write {path}: {err}") from err
