"""bf16 autocast against fp32: does it leave the article's measurements alone?

`train.precision: bf16` rounds the forward pass differently. Issue 7 keeps fp32 the default
until this shows that bf16 leaves three things unchanged within seed noise: the CBS
stopping step, the per-epoch mean gradient norm, and the final test accuracy. For each
optimizer × batch size it trains the same seeds both ways, with the config's own CBS and
fixed-epoch settings (noise measurements off), and compares the two groups of seeds:

    z = (mean_bf16 − mean_fp32) / sqrt(s²_fp32/n + s²_bf16/n)

i.e. whether the bf16 runs could pass for more fp32 seeds; |z| ≤ 2 counts as within seed
noise, and about 5 % of cells exceed it by chance alone. The gradient norm of a run is
the mean over its epochs of the per-epoch mean ‖g_k‖ (one number per run, so that the
5 % holds; comparing every epoch and keeping the worst would flag more by chance).

    python bench/precision_check.py        # the default (digits), CPU
    # a GPU node:
    python bench/precision_check.py --config config/paper.yaml --batch-sizes 16 128 1024

Prints one line per cell and a verdict per quantity, and appends the table with the
hardware, versions and date to bench/results/precision_check.jsonl.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

import torch
import yaml
from results_file import append_record, hardware  # bench/
from snakemake.utils import validate

from sgdsmooth.config import RunConfig, cell_settings
from sgdsmooth.data import load_dataset
from sgdsmooth.tables import read_table
from sgdsmooth.training import pick_device, train

PRECISIONS = ("fp32", "bf16")


def seed_noise_z(fp32: list[float], bf16: list[float]) -> float:
    """Difference of the two groups' means in units of its standard error from the seeds'
    spread (Welch's statistic); 0 when neither group varies and the means agree."""
    n32, n16 = len(fp32), len(bf16)
    diff = statistics.fmean(bf16) - statistics.fmean(fp32)
    se = math.sqrt(statistics.variance(fp32) / n32 + statistics.variance(bf16) / n16)
    if se == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / se


def runs(
    cfg: dict, protocol: str, optimizer: str, b: int, seeds: list[int], device: str, work: Path
) -> dict:
    """The cell's runs in both precisions: their tables, by precision, in seed order."""
    keys = cell_settings(cfg, protocol, optimizer, cfg["lr"], cfg["optimizers"][optimizer], b)
    keys |= (
        {"device": device, "noise_epochs": [], "full_grad_epochs": []}
        if protocol == "epochs"
        else {"device": device}
    )
    data = load_dataset(keys["dataset"], keys["data_root"], subset=keys.get("data_subset"))
    out = {}
    for precision in PRECISIONS:
        tables = []
        for seed in seeds:
            folder = work / f"{protocol}-{optimizer}-b{b}-{precision}-{seed}"
            train(RunConfig(**keys | {"seed": seed, "precision": precision}), folder, data)
            tables.append(
                read_table(
                    folder / "metrics.parquet", "cbs_epochs" if protocol == "cbs" else "epochs"
                )
            )
        out[precision] = tables
    return out


def compare(cfg: dict, optimizer: str, b: int, seeds: list[int], device: str, work: Path) -> dict:
    """One cell's row: the three quantities' means in each precision and their z."""
    cbs = runs(cfg, "cbs", optimizer, b, seeds, device, work)
    epochs = runs(cfg, "epochs", optimizer, b, seeds, device, work)
    stop = {p: [float(t["step"].iloc[-1]) for t in cbs[p]] for p in PRECISIONS}
    acc = {p: [float(t["test_accuracy"].iloc[-1]) for t in epochs[p]] for p in PRECISIONS}
    norm = {p: [float(t["grad_norm_mean"].mean()) for t in epochs[p]] for p in PRECISIONS}
    diverged = sum(bool(t["train_loss"].isna().any()) for p in PRECISIONS for t in epochs[p])
    return {
        "optimizer": optimizer,
        "batch_size": b,
        "stop_fp32": statistics.fmean(stop["fp32"]),
        "stop_bf16": statistics.fmean(stop["bf16"]),
        "stop_z": seed_noise_z(stop["fp32"], stop["bf16"]),
        "norm_fp32": statistics.fmean(norm["fp32"]),
        "norm_bf16": statistics.fmean(norm["bf16"]),
        "norm_z": seed_noise_z(norm["fp32"], norm["bf16"]),
        "acc_fp32": statistics.fmean(acc["fp32"]),
        "acc_bf16": statistics.fmean(acc["bf16"]),
        "acc_z": seed_noise_z(acc["fp32"], acc["bf16"]),
        "diverged_runs": diverged,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        help="default: the config's smallest, middle and largest",
    )
    ap.add_argument("--optimizers", nargs="+", help="default: the config's")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--device", default=None, help="default: the config's device")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("SECTION.KEY", "VALUE"),
        help="override a config value (YAML), e.g. --set accuracy.epochs 2",
    )
    ap.add_argument("--results", default="bench/results/precision_check.jsonl")
    args = ap.parse_args()
    if len(args.seeds) < 2:
        ap.error("--seeds: at least two, to measure seed noise")
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    for key, value in args.set:
        section, _, leaf = key.rpartition(".")
        (cfg.setdefault(section, {}) if section else cfg)[leaf] = yaml.safe_load(value)
    validate(cfg, "config/schema.yaml")  # fills in the defaults, as the workflow does
    grid = sorted(cfg["batch_sizes"])
    sizes = args.batch_sizes or sorted({grid[0], grid[len(grid) // 2], grid[-1]})
    optimizers = args.optimizers or list(cfg["optimizers"])
    device = pick_device(args.device or cfg.get("device", "auto"))
    hw = hardware(device)
    print(
        f"{cfg['dataset']}, {cfg['model']} on {hw}; torch {torch.__version__}; seeds {args.seeds}; "
        f"CBS ε = {cfg['cbs']['epsilon']}, {cfg['accuracy']['epochs']} epochs"
    )
    print(
        f"{'optimizer':>9} {'b':>5} {'stop fp32':>9} {'bf16':>8} {'z':>6} "
        f"{'‖g‖ fp32':>9} {'bf16':>7} {'z':>6} "
        f"{'acc fp32':>8} {'bf16':>7} {'z':>6}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="precision-") as work:
        for opt in optimizers:
            for b in sizes:
                r = compare(cfg, opt, b, args.seeds, str(device), Path(work))
                rows.append(r)
                print(
                    f"{opt:>9} {b:>5} "
                    f"{r['stop_fp32']:9.1f} {r['stop_bf16']:8.1f} {r['stop_z']:6.2f} "
                    f"{r['norm_fp32']:9.4f} {r['norm_bf16']:7.4f} {r['norm_z']:6.2f} "
                    f"{r['acc_fp32']:8.4f} {r['acc_bf16']:7.4f} {r['acc_z']:6.2f}",
                    flush=True,
                )
    verdict = {}
    for key in ("stop_z", "norm_z", "acc_z"):
        flagged = sum(abs(r[key]) > 2 for r in rows)
        verdict[key] = flagged
        print(f"{key}: {flagged} of {len(rows)} cells with |z| > 2")
    append_record(
        args.results,
        hw,
        config=args.config,
        overrides=dict(args.set),
        seeds=args.seeds,
        rows=rows,
        cells_beyond_2=verdict,
    )


if __name__ == "__main__":
    main()
