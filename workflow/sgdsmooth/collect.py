"""Gather per-run tables into the tidy study tables (one row per run)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tables import read_metadata, read_table


def run_identity(meta: dict) -> dict:
    """optimizer, lr, beta, batch_size, seed of a run, from its table metadata."""
    c = meta["config"]
    beta = 0.0 if c["optimizer"] == "sgd" else float(c["beta"])
    return {"optimizer": c["optimizer"], "lr": float(c["lr"]), "beta": beta, "batch_size": int(c["batch_size"]), "seed": int(c["seed"])}


def cbs_runs(paths) -> pd.DataFrame:
    """One row per CBS run: steps T, SFO = T·b, whether ε was reached, the run status."""
    rows = []
    for path in paths:
        meta = read_metadata(path)
        s = meta["summary"]
        rows.append(run_identity(meta) | {
            "epsilon": float(meta["config"]["epsilon"]), "steps": s["steps"], "sfo": s["sfo"],
            "reached": s["reached"], "status": s["status"],
        })
    return pd.DataFrame(rows)


def accuracy(paths) -> pd.DataFrame:
    """One row per fixed-epoch run with its last epoch's numbers and its status."""
    rows = []
    for path in paths:
        meta = read_metadata(path)
        epochs = read_table(path, "epochs")
        last = epochs.iloc[-1] if len(epochs) else pd.Series(dtype=float)
        ok = meta["summary"]["status"] == "ok"
        rows.append(run_identity(meta) | {
            "epochs": len(epochs), "status": meta["summary"]["status"],
            **{k: float(last[k]) if ok else np.nan for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")},
        })
    return pd.DataFrame(rows)


def k2_measured(paths) -> pd.DataFrame:
    """K² per optimizer × lr × beta: the largest full-batch ‖∇f(x)‖² seen along its runs."""
    rows = []
    for path in paths:
        meta = read_metadata(path)
        full = read_table(path, "epochs").full_grad_norm_sq.dropna()
        if len(full):
            rows.append(run_identity(meta) | {"value": float(full.max()), "epochs": sorted(meta["config"]["full_grad_epochs"])})
    cols = ["optimizer", "lr", "beta", "k2", "k2_method"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    out = df.groupby(["optimizer", "lr", "beta"], as_index=False).value.max().rename(columns={"value": "k2"})
    epochs = ",".join(str(e) for e in df.epochs.iloc[0])
    out["k2_method"] = (
        f"max over fixed-epoch runs (all batch sizes and seeds) of the full-training-set ‖∇f(x)‖², "
        f"BatchNorm in eval mode, measured after epochs {epochs}"
    )
    return out[cols]


def sharpness(paths, accuracy: pd.DataFrame, delta: pd.DataFrame) -> pd.DataFrame:
    """One row per trained network: its sharpness beside its test accuracy and δ."""
    from .tables import concat_tables

    s = concat_tables(paths, "sharpness_run")
    acc = accuracy[["optimizer", "lr", "beta", "batch_size", "seed", "test_accuracy"]]
    d = delta[delta.grid == "config"].astype({"batch_size": "int64"})[["optimizer", "lr", "beta", "batch_size", "delta"]]
    keys = ["optimizer", "lr", "beta", "batch_size"]
    return s.merge(acc, on=keys + ["seed"], how="left").merge(d, on=keys, how="left")
