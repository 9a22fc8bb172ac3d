"""Which library files a rule's result depends on: a module and every library module it
imports, directly or not. The workflow lists them as a rule's inputs, so that editing any of
them (a constant in ``names``, say) reruns exactly the rules whose results it can change."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@functools.cache  # a workflow asks for the same modules' imports once per rule
def _imported(path: Path, package: Path = PACKAGE) -> frozenset[str]:
    """The library modules (``from .x import …``, ``from . import x``, ``from ..x import …``)
    that one file imports, as names relative to ``package``: ``"names"``,
    ``"figures/__init__"``, ``"training/run"``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = path.parent
        for _ in range(node.level - 1):
            base = base.parent
        if node.module:
            candidates = [node.module.replace(".", "/")]
        else:  # from . import a, b: modules, or names defined in __init__
            candidates = [alias.name for alias in node.names]
        for name in candidates:
            if (base / f"{name}.py").exists():
                found.add(base / name)
            elif (base / name / "__init__.py").exists():
                found.add(base / name / "__init__")
            else:
                found.add(base / "__init__")
    return frozenset(str(f.relative_to(package)) for f in found if f.is_relative_to(package))


def library_sources(*modules: str, package: Path = PACKAGE) -> list[str]:
    """``modules`` and all library modules they import, transitively, as names relative to
    ``package`` (without ``.py``), sorted."""
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imported(package / f"{name}.py", package))
    return sorted(seen)
