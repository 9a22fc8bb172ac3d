"""Done-states: a finished run survives its job's failure.

A job trains several runs, and when one of them fails Snakemake deletes every output of the
job, the finished runs' too (whose checkpoints are gone). So a finished run also keeps its
files in <run>/.done/ (hard links: no extra space while the outputs exist) with a manifest
of what the run was; the next attempt restores them from there instead of retraining, once
the manifest, the files' hashes and the table's own metadata all say it is exactly the run
asked for, made by this code. Anything else is discarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from ..config import RunConfig
from ..paths import safe_rmtree
from ..tables import code_version, config_hash, read_metadata

log = logging.getLogger("sgdsmooth.training")

DONE = ".done"


def measures_noise(cfg: RunConfig) -> bool:
    """Whether a run writes noise.parquet."""
    return bool(cfg.noise_epochs) or (cfg.protocol == "cbs" and cfg.noise_at_stop)


def run_files(cfg: RunConfig) -> list[str]:
    """The files a finished run writes into its folder (finish_run)."""
    files = ["metrics.parquet"]
    if cfg.protocol == "epochs":
        files.append("final.pt")
    if measures_noise(cfg):
        files.append("noise.parquet")
    return files


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _link(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy where the file system has none), atomically."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _plain(config: dict) -> dict:
    """A config as it reads back from JSON (tuples as lists), for comparison."""
    return json.loads(json.dumps(config, default=str))


def keep_done(cfg: RunConfig, out: Path, summary: dict) -> None:
    """Record a finished run's files in ``out``/.done/ with its manifest (written last)."""
    done = out / DONE
    manifest = done / "done.json"
    manifest.unlink(missing_ok=True)
    done.mkdir(exist_ok=True)
    files = {}
    for name in run_files(cfg):
        _link(out / name, done / name)
        files[name] = _sha256(done / name)
    record = {
        "config": _plain(cfg.to_dict()),
        "config_hash": config_hash(cfg.to_dict()),
        "code_version": code_version(),
        "summary": summary,
        "files": files,
    }
    tmp = done / ".done.json.tmp"
    tmp.write_text(json.dumps(record, indent=1, default=str))
    os.replace(tmp, manifest)


def _other_run(cfg: RunConfig, record: dict, what: str) -> str | None:
    """Why ``record`` (a manifest, or a table's metadata) is not of the run ``cfg`` made by
    this code; None if it is."""
    want, config = _plain(cfg.to_dict()), record.get("config") or {}
    differ = sorted(k for k in want.keys() | config.keys() if want.get(k) != config.get(k))
    if differ:
        shown = ", ".join(f"{k} {config.get(k)!r} (asked: {want.get(k)!r})" for k in differ)
        return f"its {what} is of another run: {shown}"
    if record.get("config_hash") != config_hash(cfg.to_dict()):
        return f"its {what} has config hash {record.get('config_hash')}"
    if record.get("code_version") != code_version():
        return f"its {what} was made by code {record.get('code_version')}, this is {code_version()}"
    return None


def _done_problem(cfg: RunConfig, done: Path) -> str | None:
    """Why ``done`` is not this run's finished state, made by this code; None if it is: its
    manifest, then every file against the manifest's hash, then the table's own metadata."""
    try:
        record = json.loads((done / "done.json").read_text())
    except (OSError, ValueError) as err:
        return f"its manifest cannot be read ({err})"
    if problem := _other_run(cfg, record, "manifest"):
        return problem
    for name in run_files(cfg):
        if not (done / name).is_file():
            return f"{name} is missing"
        if _sha256(done / name) != record.get("files", {}).get(name):
            return f"{name} is not the file it recorded (damaged or replaced)"
    try:
        meta = read_metadata(done / "metrics.parquet")
    except (OSError, ValueError) as err:
        return f"its metrics.parquet cannot be read ({err})"
    return _other_run(cfg, meta, "metrics.parquet")


def restore_done(cfg: RunConfig, out: str | os.PathLike) -> dict | None:
    """Put a finished run's files back into ``out`` from its done-state and return its
    summary; None (the run is to be trained) when there is none, or when it is not exactly
    this run made by this code: then it is deleted, with a warning that says why."""
    out = Path(out)
    done = out / DONE
    if not done.exists():
        return None
    problem = _done_problem(cfg, done)
    if problem is not None:
        log.warning("discarding %s, not used: %s; the run is trained", done, problem)
        safe_rmtree(done, out, ignore_errors=True)
        return None
    for name in run_files(cfg):
        _link(done / name, out / name)
        os.utime(out / name)  # as new as a freshly written output
    (out / "checkpoint.pt").unlink(missing_ok=True)
    summary = read_metadata(out / "metrics.parquet")["summary"]
    log.info("restored %s from %s (finished in an earlier attempt), not retrained", out, done)
    return summary
