"""archive/<experiment>/: what a finished study measured, in a folder to commit to git.

The folder mirrors results/<experiment>/ for what it keeps (``tables/``, ``figures/``, the
training jobs' ``benchmarks/`` and one run's ``metrics.parquet`` under ``runs/``, which the
paper quotes for its compute hours and device), plus ``paper.pdf``, the study's
``config.yaml`` (defaults filled in), ``stamp.json`` (where, when and with what it was made)
and a ``README.md`` written from the stamp. With ``source: archive`` the workflow rebuilds
the figures and the paper from these files alone.
"""

from __future__ import annotations

import hashlib
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
STAMP = "stamp.json"
# What a rebuild from the archive reads from its stamp, and each key's type.
STAMP_KEYS = {
    "experiment": str,
    "commit": (str, type(None)),
    "dirty": (bool, type(None)),
    "config_hash": str,
    "files": dict,
}


class ArchiveError(ValueError):
    """An archive that cannot be trusted as stamped: a damaged stamp, or files that differ
    from the hashes it records. The message names the file (and the key)."""


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


def repo_root(scriptdir: str | Path) -> Path:
    """The checkout a workflow script runs from, given its folder (``snakemake.scriptdir``).
    Snakemake names that folder workflow/rules/../scripts: resolved first, else its
    parents[1] is workflow/rules, and build_state's archive/ (workflow/rules/archive)
    matches nothing, so a new archive marked every figure and paper "uncommitted"."""
    return Path(scriptdir).resolve().parents[1]


def build_state(repo: str | Path, env=os.environ) -> dict:
    """The checkout that builds a figure or the paper: ``git_state`` with ``archive/`` left
    out (committed outputs are not code: writing an archive must not mark the code dirty)."""
    return git_state(repo, exclude=Path(repo).resolve() / "archive", env=env)


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
each table's rows and code version, the SHA-256 of every other file here (checked before a \
rebuild) |

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
    stamp["files"] = file_hashes(out)  # last: every file the folder holds, README included
    (out / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp


def file_hashes(folder: str | Path) -> dict[str, str]:
    """The SHA-256 of every file in ``folder`` but its stamp, by POSIX path relative to it."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.relative_to(folder).as_posix() != STAMP:
            with open(path, "rb") as fh:
                out[path.relative_to(folder).as_posix()] = hashlib.file_digest(
                    fh, "sha256"
                ).hexdigest()
    return out


def read_stamp(folder: str | Path) -> dict:
    """``folder``/stamp.json, checked for the keys a rebuild reads; ArchiveError naming the
    file and the key when it is not JSON, lacks a key or holds the wrong type (rather than a
    bare JSONDecodeError or KeyError)."""
    path = Path(folder) / STAMP
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArchiveError(f"{path}: not a readable stamp ({type(err).__name__}: {err})") from err
    if not isinstance(stamp, dict):
        raise ArchiveError(f"{path}: not a stamp (a JSON object), but {type(stamp).__name__}")
    for key, kind in STAMP_KEYS.items():
        if key not in stamp:
            why = (
                " (the SHA-256 of each archived file: an archive from before they were "
                "recorded; see `python -m sgdsmooth.archive restamp --help`)"
                if key == "files"
                else ""
            )
            raise ArchiveError(f"{path}: key {key!r} is missing{why}")
        if not isinstance(stamp[key], kind):
            raise ArchiveError(
                f"{path}: key {key!r} holds {type(stamp[key]).__name__} {stamp[key]!r}"
            )
    return stamp


def verify_archive(folder: str | Path) -> dict:
    """The stamp of ``folder``, once every file it lists exists with the SHA-256 it records;
    else ArchiveError naming each file that is missing or differs. (A file the stamp does
    not list is not read by a rebuild: rule archive_paper adds paper.pdf after the stamp.)"""
    folder = Path(folder)
    stamp = read_stamp(folder)
    listed = stamp["files"]
    for name in listed:  # a tampered stamp must not make the check read files elsewhere
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ArchiveError(f"{folder / STAMP}: key 'files' lists {name!r}, outside {folder}")
    found = {n: h for n, h in file_hashes(folder).items() if n in listed}
    bad = [
        f"{folder / n}: " + ("missing" if n not in found else "differs from its stamped SHA-256")
        for n in sorted(listed)
        if found.get(n) != listed[n]
    ]
    if bad:
        raise ArchiveError(
            f"{folder} is not the archive its {STAMP} records ({len(bad)} of "
            f"{len(listed)} files):\n  " + "\n  ".join(bad) + "\nRestore them (git checkout "
            f"-- {folder}) or archive again; a rebuild from altered files would print "
            "numbers that were never measured."
        )
    return stamp


def restamp(folder: str | Path) -> dict:
    """Record the SHA-256 of every file in ``folder`` in its stamp, leaving every other key
    as it is: for an archive written before the stamp held hashes, whose files are known to
    be the ones archived (e.g. unchanged in git since the archiving commit)."""
    folder = Path(folder)
    stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    stamp["files"] = file_hashes(folder)
    (folder / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
    return stamp


def _flat(value, key=""):
    """A nested config as {dotted key: value}."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out |= _flat(v, f"{key}.{k}" if key else str(k))
        return out
    return {key: value}


def config_changes(archived: dict, current: dict) -> list[str]:
    """How ``current`` differs from the config an archive was measured with, one
    "key: archived → current" per key ("—": absent), in key order."""
    old, new = _flat(archived), _flat(current)
    return [
        f"{k}: {old.get(k, '—')} → {new.get(k, '—')}"
        for k in sorted(old.keys() | new.keys())
        if old.get(k, "—") != new.get(k, "—")
    ]


def check_rebuild(folder: str | Path, study_config: dict, allow_change: bool) -> list[str]:
    """Before a rebuild from ``folder``: verify its files (verify_archive), then compare
    ``study_config`` with the config it was measured with. Returns the differences (empty
    when none); differences are an ArchiveError unless ``allow_change``."""
    folder = Path(folder)
    stamp = verify_archive(folder)
    if stamp["experiment"] != study_config["experiment"]:
        raise ArchiveError(
            f"{folder / STAMP}: key 'experiment' is {stamp['experiment']!r}, not "
            f"{study_config['experiment']!r}: this is another experiment's archive"
        )
    if stamp["config_hash"] == config_hash(study_config):
        return []
    archived = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    changes = config_changes(archived, study_config) or [
        f"config hash {stamp['config_hash']} → {config_hash(study_config)}"
    ]
    if not allow_change:
        raise ArchiveError(
            f"this config is not the one {folder} was measured with ({folder}/config.yaml):\n  "
            + "\n  ".join(changes)
            + f"\nRebuild with --configfile {folder}/config.yaml, or add "
            "allow_config_change=True to --config to rebuild anyway (the paper's title page "
            "then lists these differences)."
        )
    return changes


def main(argv=None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m sgdsmooth.archive",
        description="Archive maintenance. restamp: record the SHA-256 of every file of an "
        "archive folder in its stamp.json (for an archive stamped before hashes were "
        "recorded; only when its files are the ones archived). verify: check them.",
    )
    parser.add_argument("command", choices=["restamp", "verify"])
    parser.add_argument("folder", nargs="+", help="archive/<experiment>")
    args = parser.parse_args(argv)
    for folder in args.folder:
        if args.command == "restamp":
            print(f"{folder}: {len(restamp(folder)['files'])} files hashed into {STAMP}")
        else:
            print(f"{folder}: {len(verify_archive(folder)['files'])} files as stamped")


if __name__ == "__main__":
    main()
