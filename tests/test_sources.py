"""sources.library_sources: the library files a rule depends on, imports followed."""

from sgdsmooth.sources import library_sources


def test_imports_are_followed_transitively_and_only_relative_ones(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "figures").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '1'\n")
    (pkg / "figures" / "__init__.py").write_text("from .. import d\n")  # up a level: d
    (pkg / "a.py").write_text("import os\nfrom .b import x\n\ndef f():\n    from . import c as C\n")
    (pkg / "b.py").write_text("from . import __version__\nfrom .figures import LABELS\nx = 1\n")
    (pkg / "c.py").write_text("from .a import f\n")  # a cycle
    (pkg / "d.py").write_text("")
    assert library_sources("a", package=pkg) == ["__init__", "a", "b", "c", "d", "figures/__init__"]
    assert library_sources("d", package=pkg) == ["d"]


def test_the_real_library():
    # collect's collapse rule reads names.NUM_CLASSES: a rule listing collect depends on names.
    assert {"collect", "names", "tables"} <= set(library_sources("collect"))
    # paper.py phrases the collapse rule through collect.
    assert "collect" in library_sources("paper")
    assert not any(m.startswith("training") for m in library_sources("collect", "paper", "claims"))
    # A training rule depends on every module of the training package and what they import,
    # graphs included (models imports it inside a function).
    training = set(library_sources("training/__init__"))
    assert {"training/loop", "training/population", "training/stacked", "optim", "data"} <= training
    assert {"graphs", "noise", "config", "models"} <= training
