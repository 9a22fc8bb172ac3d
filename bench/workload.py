"""The training workload of a config, and its floor on one GPU.

    python bench/workload.py [config/paper.yaml] [--tflops 790] [--gflop-per-image 3.33]

Counts, per batch size, the training runs of the config (fixed-epoch runs of the main study
and of Fig. 8, CBS runs), their epochs, images and optimizer steps. A CBS run stops when it
reaches ε, which is not known in advance: it is counted at its minimum (``min_epochs``) and
noted. The floor is images × GFLOP per training image / peak rate (a CIFAR ResNet-18 costs
about 1.11 GFLOP forward, so ≈ 3.33 GFLOP with the backward pass).
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import yaml

from sgdsmooth.names import TRAIN_SIZES


def cells(cfg: dict) -> set[tuple]:
    out = {(o, cfg["lr"], b) for o in cfg["optimizers"] for b in cfg["batch_sizes"]}
    sharp = cfg.get("sharpness", {})
    out |= {("sgd", lr, b) for lr in sharp.get("lrs", []) for b in sharp.get("batch_sizes", cfg["batch_sizes"])}
    return out


def workload(cfg: dict) -> dict[int, dict[str, float]]:
    n = TRAIN_SIZES[cfg["dataset"]]
    per_b: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for _, _, b in cells(cfg):
        steps_per_epoch = n // b
        for kind, seeds, epochs in (("epochs", cfg["accuracy"]["seeds"], cfg["accuracy"]["epochs"]),
                                    ("cbs", cfg["cbs"]["seeds"], cfg["cbs"].get("min_epochs", 0))):
            row = per_b[b]
            row[f"{kind}_runs"] += len(seeds)
            row["epochs"] += len(seeds) * epochs
            row["steps"] += len(seeds) * epochs * steps_per_epoch
            row["images"] += len(seeds) * epochs * steps_per_epoch * b
    return dict(sorted(per_b.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", nargs="?", default="config/paper.yaml")
    ap.add_argument("--tflops", type=float, default=790.0, help="peak bf16 matrix rate (H200 measured: 790)")
    ap.add_argument("--gflop-per-image", type=float, default=3.33)
    args = ap.parse_args()
    cfg = yaml.safe_load(open(args.config))
    rows = workload(cfg)
    print(f"{'b':>6} {'epoch runs':>10} {'CBS runs':>8} {'epochs':>9} {'steps':>12} {'images':>14}")
    total = defaultdict(float)
    for b, r in rows.items():
        print(f"{b:>6} {r['epochs_runs']:>10.0f} {r['cbs_runs']:>8.0f} {r['epochs']:>9.0f} {r['steps']:>12,.0f} {r['images']:>14,.0f}")
        for k, v in r.items():
            total[k] += v
    print(f"{'all':>6} {total['epochs_runs']:>10.0f} {total['cbs_runs']:>8.0f} {total['epochs']:>9.0f} "
          f"{total['steps']:>12,.0f} {total['images']:>14,.0f}")
    floor = total["images"] * args.gflop_per_image * 1e9 / (args.tflops * 1e12)
    print(f"FLOP floor at {args.tflops:g} TFLOP/s: {floor:,.0f} s = {floor / 3600:.2f} GPU-hours "
          f"(CBS runs counted at min_epochs = {cfg['cbs'].get('min_epochs', 0)}; they run longer)")


if __name__ == "__main__":
    main()
