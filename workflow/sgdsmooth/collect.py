"""Gather per-run tables into the tidy study tables (one row per run)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .names import NUM_CLASSES
from .tables import concat_tables, read_metadata, read_table


def run_identity(meta: dict) -> dict:
    """optimizer, lr, beta, batch_size, seed of a run, from its table metadata."""
    c = meta["config"]
    beta = 0.0 if c["optimizer"] == "sgd" else float(c["beta"])
    return {
        "optimizer": c["optimizer"],
        "lr": float(c["lr"]),
        "beta": beta,
        "batch_size": int(c["batch_size"]),
        "seed": int(c["seed"]),
    }


# A run file's place in the results tree (common.smk: CBS_RUN, EPOCH_RUN) names its run.
_RUN_PATH = re.compile(
    r"runs/(?P<protocol>cbs|epochs|sharpness)/(?:eps(?P<epsilon>[^/]+)/)?(?P<optimizer>\w+)"
    r"/lr(?P<lr>[^/]+)/beta(?P<beta>[^/]+)/b(?P<batch_size>\d+)/seed(?P<seed>\d+)/[^/]+$"
)


class RunFileError(ValueError):
    """Run files that do not hold the runs their paths name, or that hold one run twice."""


def _named_run(path) -> dict | None:
    """The run that ``path`` names; None for a path outside the results tree's layout."""
    m = _RUN_PATH.search(Path(path).as_posix())
    if m is None:
        return None
    named = {
        "optimizer": m["optimizer"],
        "lr": float(m["lr"]),
        "beta": 0.0 if m["optimizer"] == "sgd" else float(m["beta"]),
        "batch_size": int(m["batch_size"]),
        "seed": int(m["seed"]),
        # A sharpness file measures the network of a fixed-epoch run, and holds its config.
        "protocol": "epochs" if m["protocol"] == "sharpness" else m["protocol"],
    }
    if m["epsilon"] is not None:
        named["epsilon"] = float(m["epsilon"])
    return named


def _held_run(meta: dict) -> dict:
    """The run a file's metadata says it holds, in :func:`_named_run`'s terms."""
    c = meta["config"]
    held = run_identity(meta) | {"protocol": c.get("protocol")}
    if c.get("protocol") == "cbs":
        held["epsilon"] = float(c["epsilon"])
    return held


def _words(run: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in run.items())


def checked_runs(paths) -> list[tuple[str, dict]]:
    """Each run file with its metadata, once every file is checked to hold the run that its
    path names (optimizer, lr, beta, batch size, seed, protocol, ε, from the config in its
    metadata) and no run is held twice: a run file copied over another seed's would
    otherwise count one seed twice and the other not at all. Raises RunFileError naming the
    files."""
    out, problems, seen = [], [], {}
    for path in paths:
        meta = read_metadata(path)
        held, named = _held_run(meta), _named_run(path)
        differ = [k for k, v in (named or {}).items() if held.get(k) != v]
        if differ:
            problems.append(
                f"{path}: its path names {_words({k: named[k] for k in differ})}, but it holds "
                f"{_words({k: held.get(k) for k in differ})} (the run {_words(held)})"
            )
        key = tuple(sorted(held.items()))
        if key in seen:
            problems.append(f"{seen[key]} and {path} both hold the run {_words(held)}")
        seen.setdefault(key, path)
        out.append((path, meta))
    if problems:
        raise RunFileError(
            "run files that are not the runs they should be (a file copied over another?):\n  "
            + "\n  ".join(problems)
            + "\nDelete each wrong file and rerun, which retrains that run (or restores it "
            "from the verified copy in its folder's .done/)."
        )
    return out


def checked_tables(paths, name: str) -> pd.DataFrame:
    """Per-run tables of one schema (``noise``, ``sharpness_run``) in one frame, once
    :func:`checked_runs` has found each file to hold the run its path names."""
    checked_runs(paths)
    return concat_tables(paths, name)


def cbs_runs(paths) -> pd.DataFrame:
    """One row per CBS run: steps T, SFO = T·b, whether ε was reached, the run status, and
    the mean training loss of its last complete epoch (what it had learned), the epoch after
    which its stopping rule was armed (NaN: never) and whether that, not ε, set its T."""
    rows = []
    for _, meta in checked_runs(paths):
        s = meta["summary"]
        rows.append(
            run_identity(meta)
            | {
                "epsilon": float(meta["config"]["epsilon"]),
                "steps": s["steps"],
                "sfo": s["sfo"],
                "reached": s["reached"],
                "status": s["status"],
                "train_loss": s.get("train_loss", np.nan),
                "armed_epoch": np.nan if s.get("armed_epoch") is None else float(s["armed_epoch"]),
                "gate_bound": bool(s.get("gate_bound", False)),
            }
        )
    return pd.DataFrame(rows)


def accuracy(paths) -> pd.DataFrame:
    """One row per fixed-epoch run with its last epoch's numbers and its status."""
    rows = []
    for path, meta in checked_runs(paths):
        epochs = read_table(path, "epochs")
        last = epochs.iloc[-1] if len(epochs) else pd.Series(dtype=float)
        ok = meta["summary"]["status"] == "ok"
        rows.append(
            run_identity(meta)
            | {
                "epochs": len(epochs),
                "status": meta["summary"]["status"],
                **{
                    k: float(last[k]) if ok else np.nan
                    for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
                },
            }
        )
    return pd.DataFrame(rows)


KEYS = ["optimizer", "lr", "beta"]
K2_STATISTICS = ("sup", "mean", "final")


def k2_runs(paths) -> pd.DataFrame:
    """One row per fixed-epoch run: its recorded K² = ‖∇F_b(x_t)‖² trajectory summarised (sup,
    mean over the recorded epochs, last value), where it peaked, and the function it is of."""
    rows = []
    for path, meta in checked_runs(paths):
        epochs = read_table(path, "epochs")
        k2 = epochs.set_index("epoch").full_grad_norm_sq.dropna()
        if not len(k2):
            continue
        rows.append(
            run_identity(meta)
            | {
                "sup": float(k2.max()),
                "mean": float(k2.mean()),
                "final": float(k2.iloc[-1]),
                "n_points": len(k2),
                "argmax_epoch": int(k2.idxmax()),
                "bn_mode": meta.get("gradient_function", {}).get("bn_mode", "unrecorded"),
            }
        )
    return pd.DataFrame(rows)


def _stderr(x: pd.Series) -> float:
    return float(x.std() / np.sqrt(len(x))) if len(x) > 1 else np.nan


def k2_table(paths, accuracy: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``k2`` table: per optimizer × lr × beta × batch size, the runs' K² trajectories as
    sup (largest value recorded in any run), mean (mean over runs of each run's trajectory
    mean) and final (mean over runs of the last value), with standard errors over runs.
    Runs that the ``accuracy`` table marks collapsed are left out (:func:`without_collapsed`)."""
    runs = without_collapsed(k2_runs(paths), accuracy)
    cols = [
        "optimizer",
        "lr",
        "beta",
        "batch_size",
        "n_runs",
        "n_points",
        "k2_sup",
        "k2_mean",
        "k2_mean_stderr",
        "k2_final",
        "k2_final_stderr",
        "bn_mode",
    ]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    return _summarise_k2(runs, KEYS + ["batch_size"])[cols]


def _summarise_k2(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    g = runs.groupby(keys)
    mixed = g.bn_mode.nunique() > 1
    if mixed.any():
        raise ValueError(
            f"K² measured on different functions within one cell: {list(mixed[mixed].index)}"
        )
    modes = g.bn_mode.first()
    out = pd.DataFrame(
        {
            "n_runs": g.size(),
            "n_points": g.n_points.sum(),
            "k2_sup": g["sup"].max(),
            "k2_mean": g["mean"].mean(),
            "k2_mean_stderr": g["mean"].agg(_stderr),
            "k2_final": g["final"].mean(),
            "k2_final_stderr": g["final"].agg(_stderr),
            "bn_mode": modes,
        }
    )
    peak = runs.loc[g["sup"].idxmax().to_numpy()]  # one run per group, in the groups' order
    out["k2_sup_source"] = [
        f"b = {r.batch_size}, seed {r.seed}, epoch {r.argmax_epoch}" for r in peak.itertuples()
    ]
    return out.reset_index()


def k2_pooled(paths, statistic: str = "sup", accuracy: pd.DataFrame | None = None) -> pd.DataFrame:
    """K² per optimizer × lr × beta over all its batch sizes and seeds, as the article uses
    one K² per optimizer; ``k2`` is the ``statistic`` (sup, mean or final) that feeds δ.
    Runs that the ``accuracy`` table marks collapsed are left out (:func:`without_collapsed`)."""
    if statistic not in K2_STATISTICS:
        raise ValueError(f"k2 statistic must be one of {K2_STATISTICS}, got {statistic!r}")
    runs = without_collapsed(k2_runs(paths), accuracy)
    cols = KEYS + [
        "k2",
        "k2_statistic",
        "k2_sup",
        "k2_mean",
        "k2_mean_stderr",
        "k2_final",
        "k2_final_stderr",
        "k2_n_runs",
        "k2_n_points",
        "k2_sup_source",
        "bn_mode",
    ]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    out = _summarise_k2(runs, KEYS).rename(
        columns={"n_runs": "k2_n_runs", "n_points": "k2_n_points"}
    )
    out["k2"] = out[f"k2_{statistic}"]
    out["k2_statistic"] = statistic
    return out[cols]


def sharpness(paths, accuracy: pd.DataFrame, delta: pd.DataFrame) -> pd.DataFrame:
    """One row per trained network: its sharpness, adaptive and plain, beside its test
    accuracy and δ."""
    s = checked_tables(paths, "sharpness_run")
    acc = accuracy[["optimizer", "lr", "beta", "batch_size", "seed", "test_accuracy"]]
    d = delta[delta.grid == "config"].astype({"batch_size": "int64"})[
        ["optimizer", "lr", "beta", "batch_size", "delta"]
    ]
    keys = ["optimizer", "lr", "beta", "batch_size"]
    return s.merge(acc, on=keys + ["seed"], how="left").merge(d, on=keys, how="left")


# -- collapsed runs: the rule, stated once -------------------------------------------------
# A run that stops learning without a non-finite loss keeps training's status ("ok",
# "reached", "censored"); the analysis reclassifies it here, in the run tables, as
# "collapsed". docs/method.md §8.9.
COLLAPSE_DEFAULTS = {"loss_margin": 0.05, "accuracy_margin": 0.02}  # = config/schema.yaml's
RUN_KEYS = KEYS + ["batch_size", "seed"]  # one fixed-epoch run


def collapse_settings(config: dict) -> dict:
    """The collapse rule's settings for a study config: its data set's number of classes and
    the ``collapse`` block's margins (the schema's defaults where the block is absent)."""
    return (
        {"num_classes": NUM_CLASSES[config["dataset"]]}
        | COLLAPSE_DEFAULTS
        | {k: float(v) for k, v in (config.get("collapse") or {}).items()}
    )


def collapsed(
    train_loss, test_accuracy=None, *, num_classes: int, loss_margin: float, accuracy_margin: float
) -> np.ndarray:
    """Whether each run (that did not diverge) has collapsed: the rule, stated once.

    With C classes, a run has collapsed when its final training loss (the mean over its last
    complete epoch) is infinite or at least (1 − ``loss_margin``)·ln C, the loss of a uniform
    guess: the network predicts no better than chance on the data it trains on, whether it
    never learned or unlearned. A fixed-epoch run has also collapsed when its final test
    accuracy is at most 1/C + ``accuracy_margin``. A NaN loss or accuracy (not recorded)
    decides nothing; a diverged run keeps its own status (:func:`mark_collapsed`).
    """
    loss = np.asarray(train_loss, dtype=float)
    out = np.isinf(loss) | (loss >= (1 - loss_margin) * np.log(num_classes))
    if test_accuracy is not None:
        out |= np.asarray(test_accuracy, dtype=float) <= 1 / num_classes + accuracy_margin
    return out


def mark_collapsed(runs: pd.DataFrame, settings: dict) -> pd.DataFrame:
    """A run table (``cbs_runs`` or ``accuracy``) with status "collapsed" for every run that
    did not diverge and that :func:`collapsed` flags; its other columns as they were (a
    collapsed CBS run keeps ``reached``: whether its gradient norms reached ε)."""
    out = runs.copy()
    if out.empty:
        return out
    acc = out.test_accuracy if "test_accuracy" in out else None
    hit = collapsed(out.train_loss, acc, **settings) & (out.status != "diverged").to_numpy()
    out.loc[hit, "status"] = "collapsed"
    return out


def collapse_words(settings: dict) -> str:
    """The rule in words (plain Unicode), for the paper."""
    c = settings["num_classes"]
    chance_loss = math.log(c)
    return (
        f"a run that did not diverge has collapsed when its final training loss is at least "
        f"{(1 - settings['loss_margin']) * chance_loss:.2f} "
        f"({100 * (1 - settings['loss_margin']):g} % of ln {c} = {chance_loss:.2f}, the loss of "
        f"a uniform guess over the {c} classes) or, for a fixed-epoch run, its test accuracy "
        f"is at most {100 * (1 / c + settings['accuracy_margin']):.3g} % "
        f"(chance: {100 / c:.3g} %)"
    )


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """The fixed-epoch runs whose final accuracy and loss are results: all but the diverged
    (which have none). A collapsed run stays: its chance accuracy is what that η and b gave,
    and leaving it out would drop runs for the very outcome an accuracy claim tests."""
    return runs[runs.status != "diverged"]


def without_collapsed(runs: pd.DataFrame, accuracy: pd.DataFrame | None) -> pd.DataFrame:
    """``runs`` (one row per fixed-epoch run, identified by :data:`RUN_KEYS`) less those the
    ``accuracy`` table marks collapsed; all of them without an ``accuracy`` table."""
    if accuracy is None or runs.empty:
        return runs
    gone = accuracy.loc[accuracy.status == "collapsed", RUN_KEYS].assign(_collapsed=True)
    m = runs.merge(gone, on=RUN_KEYS, how="left")
    return runs[m._collapsed.isna().to_numpy()].reset_index(drop=True)


def noise_without_collapsed(
    noise: pd.DataFrame, accuracy: pd.DataFrame, cbs_runs: pd.DataFrame
) -> pd.DataFrame:
    """The noise table less the rows of collapsed runs: a fixed-epoch run's as the
    ``accuracy`` table marks it, a CBS run's as ``cbs_runs`` does."""
    if noise.empty:
        return noise
    parts = [
        without_collapsed(noise[noise.protocol == "epochs"], accuracy),
        without_collapsed(noise[noise.protocol == "cbs"], cbs_runs),
    ]
    return pd.concat(parts, ignore_index=True)
