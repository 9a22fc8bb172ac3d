"""The training workload of a config, and its floor on one GPU.

    python bench/workload.py [config/paper.yaml] [--tflops 790] [--gflop-per-image 3.33]

Counts, per batch size, the training runs of the config's jobs (sgdsmooth.grid: the
fixed-epoch and CBS runs of the main study and of Fig. 8), their epochs, images and
optimizer steps, and the steps the device takes: a population job's step trains all its runs
at once, so it counts once. A CBS run stops when it reaches ε, which is not known in
advance: it is counted at its minimum (``min_epochs``) and noted. The floor is images ×
GFLOP per training image / peak rate (a CIFAR ResNet-18 costs about 1.11 GFLOP forward,
so ≈ 3.33 GFLOP with the backward pass).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import yaml

from sgdsmooth.config import cbs_max_steps, train_size
from sgdsmooth.grid import Job, training_jobs, with_defaults

SCHEMA = Path(__file__).resolve().parents[1] / "config" / "schema.yaml"


def _merge(into: dict, new: dict) -> dict:
    for key, value in new.items():
        into[key] = _merge(dict(into.get(key) or {}), value) if isinstance(value, dict) else value
    return into


def read_config(*paths: str | Path) -> dict:
    """A workflow config with the schema's defaults, as the workflow sees it; several files
    are merged in order, key by key, as ``snakemake --configfile a b`` merges them."""
    cfg: dict = {}
    for path in paths:
        _merge(cfg, yaml.safe_load(Path(path).read_text()) or {})
    return with_defaults(cfg, yaml.safe_load(SCHEMA.read_text()))


def cbs_at_budget(cfg: dict) -> bool:
    """Whether CBS runs are counted at their whole step budget (an upper bound: a config
    with ``cbs.max_sfo`` has a budget of a few epochs), else at ``min_epochs`` (a lower one:
    the article's config has a budget of millions of steps that no run uses)."""
    return cfg["cbs"].get("max_sfo") is not None


def cbs_note(cfg: dict) -> str:
    return (
        "CBS runs counted at their whole budget; those that reach ε stop sooner"
        if cbs_at_budget(cfg)
        else f"CBS runs counted at min_epochs = {cfg['cbs']['min_epochs']}; they run longer"
    )


def run_steps(cfg: dict, job: Job) -> int:
    """Optimizer steps of each run of ``job``: fixed-epoch runs' epochs, CBS runs' budget
    (``cbs_at_budget``) or minimum."""
    per_epoch = train_size(cfg) // job.batch_size
    if job.protocol == "epochs":
        return cfg["accuracy"]["epochs"] * per_epoch
    if cbs_at_budget(cfg):
        return cbs_max_steps(cfg, job.batch_size)
    return cfg["cbs"]["min_epochs"] * per_epoch


def workload(cfg: dict) -> dict[int, dict[str, float]]:
    """Per batch size: runs by protocol, epochs, optimizer steps, images, and device steps."""
    per_b: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for job in training_jobs(cfg):
        row, steps = per_b[job.batch_size], run_steps(cfg, job)
        row[f"{job.protocol}_runs"] += job.runs
        row["epochs"] += job.runs * steps / (train_size(cfg) // job.batch_size)
        row["steps"] += job.runs * steps
        row["images"] += job.runs * steps * job.batch_size
        row["device_steps"] += steps if job.together else job.runs * steps
    return dict(sorted(per_b.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="config/paper.yaml")
    ap.add_argument(
        "--tflops", type=float, default=790.0, help="peak bf16 matrix rate (H200 measured: 790)"
    )
    ap.add_argument(
        "--gflop-per-image", type=float, help="default: 3 × the config's model's forward FLOPs"
    )
    args = ap.parse_args()
    cfg = read_config(args.config)
    if args.gflop_per_image is None:
        from train_throughput import gflop_per_image  # bench/

        args.gflop_per_image = gflop_per_image(cfg["model"], cfg["dataset"])
    rows = workload(cfg)
    print(
        f"{'b':>6} {'epoch runs':>10} {'CBS runs':>8} {'epochs':>9} "
        f"{'steps':>12} {'images':>14} {'device steps':>13}"
    )
    total = defaultdict(float)
    for b, r in rows.items():
        print(
            f"{b:>6} {r['epochs_runs']:>10.0f} {r['cbs_runs']:>8.0f} {r['epochs']:>9.0f} "
            f"{r['steps']:>12,.0f} {r['images']:>14,.0f} {r['device_steps']:>13,.0f}"
        )
        for k, v in r.items():
            total[k] += v
    print(
        f"{'all':>6} {total['epochs_runs']:>10.0f} {total['cbs_runs']:>8.0f} "
        f"{total['epochs']:>9.0f} {total['steps']:>12,.0f} {total['images']:>14,.0f} "
        f"{total['device_steps']:>13,.0f}"
    )
    floor = total["images"] * args.gflop_per_image * 1e9 / (args.tflops * 1e12)
    print(
        f"FLOP floor at {args.tflops:g} TFLOP/s and {args.gflop_per_image:.4g} GFLOP "
        f"a training image: "
        f"{floor:,.0f} s = {floor / 3600:.2f} GPU-hours ({cbs_note(cfg)})"
    )


if __name__ == "__main__":
    main()
