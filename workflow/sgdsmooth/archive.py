"""archive/<experiment>/: what a finished study measured, in a folder to commit to git.

The folder mirrors results/<experiment>/ for what it keeps (``tables/``, ``figures/``, the
training jobs' ``benchmarks/`` and one run's ``metrics.parquet`` under ``runs/``, which the
paper quotes for its compute hours and device), plus ``paper.pdf``, the study's
``config.yaml`` (defaults filled in), ``stamp.json`` (where, when and with what it was made)
and a ``README.md`` written from the stamp. With ``source: archive`` the workflow rebuilds
the figures and the paper from these files alone.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from .paths import safe_rmtree
from .tables import config_hash, read_metadata

VERSIONS = ("torch", "snakemake", "pandas", "pyarrow", "numpy")


def git_state(repo: str | Path, exclude: str | Path | None = None, env=os.environ) -> dict:
    """The commit checked out in ``repo`` and the paths that differ from it (modified, staged
    or untracked; ignored files do not count), leaving out those under ``exclude``. Outside a
    git checkout, or without git: the commit given in ``SOURCE_COMMIT`` (a copy of a tree sent
    to a GPU machine has no .git; the sender names its commit, and ``commit_source`` says so)
    with dirty unknown, else commit and dirty are None."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        top = Path(git("rev-parse", "--show-toplevel").strip())
        entries = git("status", "--porcelain=v1", "-z", "--untracked-files=all").split("\0")
    except (OSError, subprocess.CalledProcessError):
        given = env.get("SOURCE_COMMIT") or None
        return {
            "commit": given,
            "dirty": None,
            "changed": [],
            "commit_source": "SOURCE_COMMIT" if given else None,
        }
    skip = Path(exclude).resolve() if exclude is not None else None
    changed, i = [], 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        status, path = entry[:2], entry[3:]
        if status[0] in "RC":  # a rename or copy: the next entry is the old path
            i += 1
        if skip is not None and (top / path).resolve().is_relative_to(skip):
            continue
        changed.append(path)
    return {
        "commit": commit,
        "dirty": bool(changed),
        "changed": sorted(changed),
        "commit_source": "git",
    }


def build_state(repo: str | Path, env=os.environ) -> dict:
    """The checkout that builds a figure or the paper: ``git_state`` with ``archive/`` left
    out (committed outputs are not code: writing an archive must not mark the code dirty)."""
    return git_state(repo, exclude=Path(repo) / "archive", env=env)


def commit_words(state: dict) -> str:
    """A git state in words, to follow "at" or "from": the commit (12 hex digits) and
    whether the tree differed from it."""
    if state["commit"] is None:
        return "no git commit (not a checkout)"
    short = "commit " + state["commit"][:12]
    if state["dirty"] is None:
        return f"{short} (uncommitted changes unknown)"
    if state["dirty"]:
        return f"{short} with uncommitted changes"
    return short


def figure_caption(caption: str, rule: str, module: str, state: dict) -> str:
    """A figure's caption as the report and the paper show it: the text of
    workflow/report/<module>.rst and where the figure came from, as reStructuredText."""
    return (
        f"{caption.strip()}\n\n"
        f"Drawn by rule ``{rule}``: ``workflow/scripts/figure.py`` with "
        f"``workflow/sgdsmooth/figures/{module}.py``, at {commit_words(state)}.\n"
    )


def training_devices(runs) -> dict[str, int]:
    """How many of the run files each device trained, from their metadata."""
    return dict(Counter(d for d in (read_metadata(r).get("device") for r in runs) if d))


def this_machine() -> str:
    """The archiving machine, for when no run records its device."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"cpu ({platform.processor() or platform.machine()})"


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def make_stamp(
    config: dict,
    tables: dict[str, str | Path],
    runs,
    repo: str | Path,
    exclude: str | Path | None = None,
    now: datetime | None = None,
) -> dict:
    """The archive's provenance: commit, uncommitted changes, config hash, training device,
    versions, date, and each table's row count and code version."""
    devices = training_devices(runs)
    table_info = {}
    for name, path in sorted(tables.items()):
        code = read_metadata(path).get("code_version")
        table_info[name] = {"rows": pq.read_metadata(path).num_rows, "code_version": code}
    return {
        "experiment": config["experiment"],
        "date": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        **git_state(repo, exclude),
        "config_hash": config_hash(config),
        "device": ", ".join(sorted(devices)) if devices else this_machine(),
        "device_source": "runs" if devices else "archiving machine",
        "runs_per_device": devices,
        "machine": platform.platform(),
        "versions": versions(),
        "tables": table_info,
    }


def readme(stamp: dict) -> str:
    """The archive's README: what it holds, when and from which commit, how to rebuild."""
    exp, v = stamp["experiment"], stamp["versions"]
    if stamp["commit"] is None:
        commit = "none recorded (not archived from a git checkout)"
    elif stamp.get("commit_source") == "SOURCE_COMMIT":
        commit = (
            f"`{stamp['commit']}`, as named by SOURCE_COMMIT where the tree had no .git "
            "(uncommitted changes unknown)"
        )
    elif stamp["dirty"]:
        commit = (
            f"`{stamp['commit']}` with uncommitted changes to {len(stamp['changed'])} file(s) "
            "(`stamp.json`)"
        )
    else:
        commit = f"`{stamp['commit']}` (no uncommitted changes)"
    runs = sum(stamp["runs_per_device"].values())
    device = stamp["device"] + (f" ({runs} runs)" if runs else f" ({stamp['device_source']})")
    tables = ", ".join(f"`{n}` ({t['rows']} rows)" for n, t in stamp["tables"].items())
    return f"""# Archived results: `{exp}`

What the pipeline measured for `{exp}`, copied from `results/{exp}/` by `snakemake archive`.
Generated from `stamp.json`; do not edit: the next `snakemake archive` replaces this folder.

- date: {stamp["date"]}
- commit: {commit}
- config hash: `{stamp["config_hash"]}` (of `config.yaml`, defaults filled in)
- trained on: {device}
- versions: Python {v["python"]}, torch {v["torch"]}, Snakemake {v["snakemake"]}, \
pandas {v["pandas"]}, pyarrow {v["pyarrow"]}, numpy {v["numpy"]}

| file | what |
|---|---|
| `paper.pdf` | the reproduction report as built from these results (an archive made without \
TeX gets it from \
`bin/run archive_paper --configfile archive/{exp}/config.yaml --config source=archive`) |
| `figures/*.pdf`, `figures/*.png` | the figures |
| `tables/*.parquet` | every table of `results/{exp}/tables/`: {tables} |
| `benchmarks/` | wall time of every training job (the paper's compute hours) |
| `runs/…/metrics.parquet` | one fixed-epoch run, whose metadata names the training device \
for the paper (the other runs are not archived) |
| `config.yaml` | the configuration the results were measured with |
| `stamp.json` | date, commit, uncommitted changes, config hash, device, versions, \
each table's rows and code version |

Rebuild the figures and the paper from this archive, without training (into `results/{exp}/`;
nothing here changes):

    bin/run --configfile archive/{exp}/config.yaml --config source=archive

One figure: `bin/run fig4 --configfile archive/{exp}/config.yaml --config source=archive`.
If the table schemas have changed since, check out the commit above first.
"""


def write_archive(
    out: str | Path,
    results: str | Path,
    tables,
    figures,
    paper: str | Path | None,
    benchmarks,
    example_run: str | Path,
    runs,
    config: dict,
    repo: str | Path,
    inside: str | Path = "archive",
) -> dict:
    """Copy a finished study from ``results`` into ``out`` (emptied first) and stamp it;
    ``stamp.json`` comes last, so that a folder without one is an unfinished archive.
    ``out`` must lie strictly inside ``inside`` (the folder of archives), or nothing is
    deleted: an ``out`` of archive/.. would empty the checkout."""
    out, results = Path(out), Path(results)
    safe_rmtree(out, inside)
    for src in [*tables, *figures, *benchmarks, example_run]:
        dest = out / Path(src).relative_to(results)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest)
    if paper is not None:  # None: archived where TeX is missing; rule archive_paper adds it later
        shutil.copy2(paper, out / "paper.pdf")
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    stamp = make_stamp(config, {Path(t).stem: t for t in tables}, runs, repo, exclude=out)
    (out / "README.md").write_text(readme(stamp))
    (out / "stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp
