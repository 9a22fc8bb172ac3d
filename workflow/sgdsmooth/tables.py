"""Parquet tables: every schema defined once here, checked on write and on read.

A table is tidy (one row per observation). Its file metadata holds provenance under the key
``sgdsmooth`` as JSON: whatever the writer passes (run config, config hash, seed, device…)
plus the code version and the torch version. Writes go to a temporary file in the same
folder and are renamed into place, so a killed job never leaves half a table.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__

META_KEY = b"sgdsmooth"

_f64, _i64, _str, _bool = pa.float64(), pa.int64(), pa.string(), pa.bool_()


def _schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, typ) for name, typ in fields])


SCHEMAS: dict[str, pa.Schema] = {
    # One row per epoch of a fixed-epoch run.
    "epochs": _schema(
        ("epoch", _i64),
        ("step", _i64),
        ("lr", _f64),
        ("train_loss", _f64),
        ("train_accuracy", _f64),
        ("test_loss", _f64),
        ("test_accuracy", _f64),
        ("grad_norm_mean", _f64),
        ("full_grad_norm_sq", _f64),
        ("wall_time", _f64),
    ),
    # One row per epoch of a CBS run: the trace of mini-batch gradient norms.
    "cbs_epochs": _schema(
        ("epoch", _i64),
        ("step", _i64),
        ("train_loss", _f64),
        ("grad_norm_mean", _f64),
        ("grad_norm_min", _f64),
        ("grad_norm_max", _f64),
        ("running_mean", _f64),
        ("wall_time", _f64),
    ),
    "cbs_runs": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("epsilon", _f64),
        ("batch_size", _i64),
        ("seed", _i64),
        ("steps", _i64),
        ("sfo", _i64),
        ("reached", _bool),
        ("status", _str),
        ("train_loss", _f64),
        ("armed_epoch", _f64),
        ("gate_bound", _bool),
    ),
    # Per optimizer × lr × beta × epsilon × batch size; n_reached counts the runs that reached ε
    # and did not collapse (cbs.py).
    "critical_batch_size": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("epsilon", _f64),
        ("batch_size", _i64),
        ("sfo_mean", _f64),
        ("sfo_min", _f64),
        ("sfo_max", _f64),
        ("sfo_lower_mean", _f64),
        ("n_runs", _i64),
        ("n_reached", _i64),
        ("n_censored", _i64),
        ("n_diverged", _i64),
        ("n_collapsed", _i64),
        ("bootstrap_share", _f64),
        ("is_critical", _bool),
        ("critical_batch_size", _i64),  # null where the cell has no b* (see ``reason``)
        ("established", _bool),
        ("reason", _str),
        ("bootstrap_established", _f64),
        ("bstar_ci_low", _f64),
        ("bstar_ci_high", _f64),
        ("winner_share", _f64),  # share of bootstrap replicates whose b* is the point b*
        ("bstar_interp", _f64),  # vertex of the parabola in log2 b through b* and neighbours
        ("bstar_interp_ci_low", _f64),
        ("bstar_interp_ci_high", _f64),
        ("bstar_interp_replicates", _i64),  # replicates with an interpolated b*
    ),
    # K² = ‖∇F_b‖² along the fixed-epoch runs, per optimizer × lr × beta × batch size.
    "k2": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("batch_size", _i64),
        ("n_runs", _i64),
        ("n_points", _i64),
        ("k2_sup", _f64),
        ("k2_mean", _f64),
        ("k2_mean_stderr", _f64),
        ("k2_final", _f64),
        ("k2_final_stderr", _f64),
        ("bn_mode", _str),
    ),
    # Per optimizer × lr × beta: C² bound from b* (Thm. 4.4) and K² pooled over batch sizes;
    # ``k2`` is the statistic (``k2_statistic``) that feeds δ.
    "variance": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("epsilon", _f64),
        ("critical_batch_size", _i64),
        ("established", _bool),
        ("reason", _str),
        ("bstar_interp", _f64),
        ("bstar_low", _f64),  # b*'s interval carried into C² and δ (cbs.bstar_interval)
        ("bstar_high", _f64),
        ("bstar_interval", _str),  # "interpolated" or "grid" ("" without b*)
        ("c2_bound", _f64),
        ("c2_bound_low", _f64),
        ("c2_bound_high", _f64),
        ("k2", _f64),
        ("k2_statistic", _str),
        ("k2_sup", _f64),
        ("k2_mean", _f64),
        ("k2_mean_stderr", _f64),
        ("k2_final", _f64),
        ("k2_final_stderr", _f64),
        ("k2_n_runs", _i64),
        ("k2_n_points", _i64),  # recorded K² values behind the sup
        ("k2_sup_source", _str),
        ("bn_mode", _str),
    ),
    # δ (eqs. 12–14); delta_low/high span δ over K² ∈ {sup, mean, final} (only SHB has K²).
    "delta": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("batch_size", _f64),
        ("c2_bound", _f64),
        ("k2", _f64),
        ("delta", _f64),
        ("delta_low", _f64),
        ("delta_high", _f64),
        ("delta_ci_low", _f64),  # δ at the ends of the C² bound's interval (b*'s interval)
        ("delta_ci_high", _f64),
        ("established", _bool),
        ("grid", _str),
    ),
    "accuracy": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("batch_size", _i64),
        ("seed", _i64),
        ("epochs", _i64),
        ("status", _str),
        ("train_loss", _f64),
        ("train_accuracy", _f64),
        ("test_loss", _f64),
        ("test_accuracy", _f64),
    ),
    "sharpness_run": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("batch_size", _i64),
        ("seed", _i64),
        ("rho", _f64),
        ("p", _str),
        ("sharpness", _f64),
        ("average_sharpness", _f64),
        ("sharpness_plain", _f64),
        ("average_sharpness_plain", _f64),
    ),
    "sharpness": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("batch_size", _i64),
        ("seed", _i64),
        ("rho", _f64),
        ("p", _str),
        ("sharpness", _f64),
        ("average_sharpness", _f64),
        ("sharpness_plain", _f64),
        ("average_sharpness_plain", _f64),
        ("test_accuracy", _f64),
        ("delta", _f64),
    ),
    # The article's claims, each with the statistic that decides it and a computed verdict;
    # ``kind``: finding, identity or consistency (claims.py); text columns hold TeX math.
    "claims": _schema(
        ("test", _str),
        ("kind", _str),
        ("optimizer", _str),
        ("claim", _str),
        ("statistic", _str),
        ("value", _f64),
        ("ci_low", _f64),
        ("ci_high", _f64),
        ("threshold", _str),
        ("verdict", _str),
        ("n", _i64),
        ("fails_if", _str),
        ("note", _str),
    ),
    # Rank correlations of accuracy with sharpness and δ (correlate.py): the coefficient on
    # all ``n`` rows (runs), its interval from the bootstrap over the ``n_cells`` cells and
    # the seeds within them, and how many replicates gave a finite value (0: no interval).
    "correlations": _schema(
        ("predictor", _str),
        ("method", _str),
        ("coefficient", _f64),
        ("ci_low", _f64),
        ("ci_high", _f64),
        ("n", _i64),
        ("n_cells", _i64),
        ("n_boot", _i64),
        ("n_boot_valid", _i64),
    ),
    "noise": _schema(
        ("optimizer", _str),
        ("lr", _f64),
        ("beta", _f64),
        ("batch_size", _i64),
        ("seed", _i64),
        ("protocol", _str),  # the run's: "epochs", or "cbs" (measured along a CBS run)
        ("epoch", _i64),
        ("step", _i64),  # optimizer steps the measured weights had taken
        ("c2", _f64),
        ("c2_stderr", _f64),
        ("c2_batches", _i64),
        ("c2_per_example", _f64),
        ("c2_per_example_stderr", _f64),
        ("n_per_example", _i64),
        ("k2", _f64),
        ("direction_noise_sq", _f64),
        ("delta_empirical", _f64),
        ("noise_scale", _f64),
        ("bn_mode", _str),
        ("augmented", _bool),
        ("seconds", _f64),
    ),
}


class SchemaError(ValueError):
    """A table does not have the columns or types its schema promises."""


def config_hash(config: dict) -> str:
    """A short, stable hash of a JSON-serialisable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def code_version() -> str:
    # The hash of the library's own sources: changes whenever the code that made a table does.
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def _conform(df: pd.DataFrame, name: str) -> pa.Table:
    schema = SCHEMAS[name]
    missing = [f for f in schema.names if f not in df.columns]
    extra = [c for c in df.columns if c not in schema.names]
    if missing or extra:
        raise SchemaError(f"table {name!r}: missing columns {missing}, unexpected columns {extra}")
    try:
        return pa.Table.from_pandas(df[schema.names], schema=schema, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise SchemaError(f"table {name!r}: {err}") from err


def write_table(
    df: pd.DataFrame, path: str | os.PathLike, name: str, metadata: dict | None = None
) -> None:
    """Check ``df`` against schema ``name`` and write it atomically with provenance."""
    import torch  # only for its version; imported here so analysis-only users pay once

    table = _conform(df, name)
    meta = {"table": name, "code_version": code_version(), "torch_version": torch.__version__}
    meta.update(metadata or {})
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, default=str).encode()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CorruptTableError(ValueError):
    """A table file that Parquet cannot read (truncated, overwritten, not a table)."""


def _unreadable(path, err: Exception) -> CorruptTableError:
    return CorruptTableError(
        f"{path}: not a readable Parquet table ({type(err).__name__}: {err}). The file is "
        "damaged (truncated by a full disk or a killed copy?): delete it and rerun, which "
        "rebuilds it (a run's metrics.parquet: that run is retrained, or restored from the "
        "verified copy in its folder's .done/)."
    )


def read_table(path: str | os.PathLike, name: str) -> pd.DataFrame:
    """Read a table and check it against schema ``name``; a damaged file is named."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        if not Path(path).exists():
            raise
        raise _unreadable(path, err) from err
    schema = SCHEMAS[name]
    if not table.schema.remove_metadata().equals(schema):
        raise SchemaError(
            f"{path}: schema differs from {name!r}:\n{table.schema}\nexpected:\n{schema}"
        )
    return table.to_pandas()


def read_metadata(path: str | os.PathLike) -> dict:
    """The provenance dict stored with a table; a damaged file is named."""
    try:
        meta = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as err:
        if not Path(path).exists():
            raise
        raise _unreadable(path, err) from err
    return json.loads(meta.get(META_KEY, b"{}"))


def concat_tables(paths, name: str) -> pd.DataFrame:
    """Read several tables of one schema into one frame."""
    frames = [read_table(p, name) for p in paths]
    if not frames:
        return pd.DataFrame(
            {
                f: pd.Series(dtype=t.to_pandas_dtype())
                for f, t in zip(SCHEMAS[name].names, SCHEMAS[name].types)
            }
        )
    return pd.concat(frames, ignore_index=True)


def claims_row(
    test, kind, optimizer, claim, statistic, value, lo, hi, threshold, verdict, n, fails_if, note
) -> dict:
    """One row of the claims ledger (schema ``claims``), numbers as floats and counts as ints."""
    return {
        "test": test,
        "kind": kind,
        "optimizer": optimizer,
        "claim": claim,
        "statistic": statistic,
        "value": float(value),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "threshold": threshold,
        "verdict": verdict,
        "n": int(n),
        "fails_if": fails_if,
        "note": note,
    }
