"""Which library files a rule's result depends on: a module and every library module it
imports, directly or not. The workflow lists them as a rule's inputs, so that editing any of
them (a constant in ``names``, say) reruns exactly the rules whose results it can change."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


@functools.cache  # a workflow asks for the same modules' imports once per rule
def _imported(path: Path) -> frozenset[str]:
    """The library modules (``from .x import …``, ``from . import x``) that one file imports,
    as names relative to the package: ``"names"``, ``"figures/__init__"``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue  # absolute imports, and figures' ``from .. import`` (listed by the rule)
        if node.module:
            candidates = [node.module.replace(".", "/")]
        else:  # from . import a, b: modules, or names defined in __init__
            candidates = [alias.name for alias in node.names]
        for name in candidates:
            if (path.parent / f"{name}.py").exists():
                found.add(name)
            elif (path.parent / name / "__init__.py").exists():
                found.add(f"{name}/__init__")
            else:
                found.add("__init__")
    return frozenset(found)


def library_sources(*modules: str, package: Path = PACKAGE) -> list[str]:
    """``modules`` and all library modules they import, transitively, as names relative to
    ``package`` (without ``.py``), sorted. A subpackage's ``__init__`` is followed no further:
    its own imports are relative to it (the figure rules list their modules themselves)."""
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if "/" not in name:
            todo.extend(_imported(package / f"{name}.py"))
    return sorted(seen)
