"""The documentation a clone needs: docs/method.md exists, the READMEs' relative links lead to
files of the repository, and every library function docs/method.md names exists."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "workflow" / "sgdsmooth"
METHOD = ROOT / "docs" / "method.md"
LINKED_DOCS = ["README.md", "config/README.md", "bench/README.md", "docs/method.md"]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# `module.function`, `sgdsmooth.module.Class.method`, optionally with a trailing "()"
CODE_REF = re.compile(r"`((?:sgdsmooth\.)?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?`")
FILE_SUFFIX = re.compile(r"\.(parquet|py|md|ya?ml|pt|pdf|png|tex|json|jsonl|smk|txt|sh|tsv)$")
LIB_PATH = re.compile(r"workflow/sgdsmooth/[\w/]+\.py")


def relative_links(markdown: str) -> list[str]:
    """Targets of the inline, image and reference links outside fenced code blocks that
    point into the repository (no URL scheme, not a bare #anchor), without their anchor."""
    text = FENCE.sub("", markdown)
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    out = []
    for target in targets:
        if SCHEME.match(target) or target.startswith("#"):
            continue
        out.append(unquote(target.split("#", 1)[0].split("?", 1)[0]))
    return [t for t in out if t]


def ignored_by_git(path: Path) -> bool:
    """Whether git ignores ``path`` (so that a clone lacks it); False where git cannot say."""
    try:
        done = subprocess.run(
            ["git", "check-ignore", "-q", str(path)], cwd=ROOT, capture_output=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def test_method_document_exists():
    assert METHOD.is_file(), "docs/method.md is missing: the method a clone must have"
    assert len(METHOD.read_text(encoding="utf-8").splitlines()) > 100


@pytest.mark.parametrize("doc", LINKED_DOCS)
def test_relative_links_lead_to_files_of_the_repository(doc):
    source = ROOT / doc
    assert source.is_file(), f"{doc} is missing"
    bad = []
    for target in relative_links(source.read_text(encoding="utf-8")):
        base = ROOT if target.startswith("/") else source.parent
        path = (base / target.lstrip("/")).resolve()
        if not path.is_relative_to(ROOT):
            bad.append(f"{target} (outside the repository)")
        elif not path.exists():
            bad.append(f"{target} (no such file)")
        elif ignored_by_git(path):
            bad.append(f"{target} (ignored by git: a clone does not have it)")
    assert not bad, f"{doc} links to: " + "; ".join(bad)


def test_link_extraction():
    text = (
        '[a](docs/method.md) ![b](x/y.png "t") [c](https://example.org) [d](#top)\n'
        "```\n[e](not/a/link.md)\n```\n[f]: ../shared/METHOD.md\n[g](z.md#part)\n"
    )
    assert relative_links(text) == ["docs/method.md", "x/y.png", "z.md", "../shared/METHOD.md"]


def library_modules() -> set[str]:
    """Top-level names of the library: its modules and subpackages."""
    names = {p.stem for p in LIB.glob("*.py") if p.stem != "__init__"}
    return names | {p.name for p in LIB.iterdir() if (p / "__init__.py").is_file()}


def config_keys(schema: dict, prefix: str = "") -> set[str]:
    """Every key of the config schema, dotted (``cbs.learned_loss``): the same spelling as
    a library reference, so that config keys are told apart from functions."""
    keys = set()
    for name, sub in schema.get("properties", {}).items():
        keys.add(prefix + name)
        if isinstance(sub, dict):
            keys |= config_keys(sub, f"{prefix}{name}.")
    return keys


def resolve(reference: str):
    """The object a dotted library reference names: ``sgdsmooth.<first part>``, then each
    further part as an attribute (or a submodule of a package). Raises LookupError where it
    does not exist."""
    first, *rest = reference.split(".")
    name = f"sgdsmooth.{first}"
    if importlib.util.find_spec(name) is None:
        raise LookupError(f"no module {name}")
    obj = importlib.import_module(name)
    for attr in rest:
        if not hasattr(obj, attr) and hasattr(obj, "__path__"):  # a package's submodule
            sub = f"{obj.__name__}.{attr}"
            if importlib.util.find_spec(sub) is not None:
                importlib.import_module(sub)
        if not hasattr(obj, attr):
            raise LookupError(f"{getattr(obj, '__name__', name)} has no attribute {attr}")
        obj = getattr(obj, attr)
    return obj


def method_references() -> list[str]:
    """The library references docs/method.md makes: `module.function` spans (and ones
    spelled `sgdsmooth.module...`) that are neither config keys nor file names."""
    text = METHOD.read_text(encoding="utf-8")
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text(encoding="utf-8"))
    keys, modules = config_keys(schema), library_modules()
    refs = []
    for token in CODE_REF.findall(text):
        explicit = token.startswith("sgdsmooth.")
        name = token.removeprefix("sgdsmooth.")
        if FILE_SUFFIX.search(name) or (not explicit and name in keys):
            continue
        if explicit or name.split(".")[0] in modules:
            refs.append(name)
    return sorted(set(refs))


def test_method_names_library_functions_that_exist():
    refs = method_references()
    assert len(refs) >= 30, f"only {len(refs)} library references found: {refs}"
    missing = []
    for ref in refs:
        try:
            resolve(ref)
        except LookupError as err:
            missing.append(f"{ref} ({err})")
    assert not missing, "docs/method.md names what the library lacks: " + "; ".join(missing)


def test_method_library_paths_exist():
    text = METHOD.read_text(encoding="utf-8")
    missing = sorted({p for p in LIB_PATH.findall(text) if not (ROOT / p).is_file()})
    assert not missing, f"docs/method.md names files that do not exist: {missing}"


def test_reference_check_catches_a_wrong_name():
    assert resolve("theory.degree_of_smoothing")
    with pytest.raises(LookupError):
        resolve("theory.no_such_function")
    with pytest.raises(LookupError):
        resolve("no_such_module.f")
