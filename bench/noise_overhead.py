"""What the noise measurements (issue 8) add to a fixed-epoch run of the default config.

Trains the same runs in this process with the config's ``noise`` measurements and without
(best of ``--repeats`` each, after one warm-up run), and prints the time of each, the
overhead in percent (target: at most 10 %), and where one measurement spends its time. The
plain run already computes K² = ‖∇F_b‖² at its ``full_grad_epochs``; a measurement at such an epoch
reuses its full gradient instead of computing it twice.

    python bench/noise_overhead.py [--config config/config.yaml] [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml
from snakemake.utils import validate

from sgdsmooth import noise
from sgdsmooth.config import RunConfig, cell_settings
from sgdsmooth.data import load_dataset
from sgdsmooth.optim import make_optimizer
from sgdsmooth.training import open_run, train


def run_config(cfg: dict, optimizer: str, batch_size: int, measured: bool) -> RunConfig:
    """One of the config's fixed-epoch runs on the CPU, with or without its measurements."""
    keys = cell_settings(
        cfg, "epochs", optimizer, cfg["lr"], cfg["optimizers"][optimizer], batch_size
    )
    return RunConfig(
        **keys
        | {"seed": 0, "device": "cpu", "noise_epochs": keys["noise_epochs"] if measured else []}
    )


def seconds(cfg: RunConfig, data, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        train(cfg, tempfile.mkdtemp(prefix="noise-bench-"), data)
        best = min(best, time.perf_counter() - start)
    return best


def parts(cfg: RunConfig, data) -> dict[str, float]:
    """One measurement's components, timed separately at an untrained point."""
    net = open_run(cfg, None, data).network()  # the run's network at its start
    opt = make_optimizer(cfg.optimizer, list(net.parameters()), cfg.lr, cfg.beta)
    gen = torch.Generator().manual_seed(0)
    b = cfg.batch_size
    out = {}
    start = time.perf_counter()
    full = noise.full_gradient(net, data, b, gen)
    out["full gradient (K²)"] = time.perf_counter() - start
    start = time.perf_counter()
    noise.batch_noise(net, data, b, cfg.noise_batches, gen, full)
    out["batch C²"] = time.perf_counter() - start
    start = time.perf_counter()
    noise.direction_noise(net, opt, data, b, cfg.noise_steps, gen, first_full=full)
    out["direction noise"] = time.perf_counter() - start
    start = time.perf_counter()
    if cfg.noise_per_example:
        noise.per_example_noise(net, data, b, cfg.noise_per_example, gen, full)
    out["per-example C²"] = time.perf_counter() - start
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument(
        "--threads", type=int, default=1, help="as the pipeline's training jobs (train.threads)"
    )
    ap.add_argument(
        "--batch-sizes", type=int, nargs="+", help="default: the config's smallest and largest"
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(Path(args.config).read_text())
    validate(cfg, "config/schema.yaml")  # fills in the defaults, as the workflow does
    data = load_dataset(
        cfg["dataset"], cfg.get("data_root", "resources"), subset=cfg.get("data_subset")
    )
    sizes = args.batch_sizes or [min(cfg["batch_sizes"]), max(cfg["batch_sizes"])]
    print(
        f"{cfg['dataset']}, {cfg['model']}, {cfg['accuracy']['epochs']} epochs, noise at epochs "
        f"{cfg['noise']['epochs']}, {args.threads} thread(s), torch {torch.__version__}"
    )
    print(f"{'optimizer':>9} {'b':>5} {'plain s':>8} {'noise s':>8} {'overhead':>8}")
    seconds(run_config(cfg, "sgd", sizes[-1], True), data, 1)  # warm-up: first-call costs
    total = {False: 0.0, True: 0.0}
    for opt in cfg["optimizers"]:
        for b in sizes:
            t = {m: seconds(run_config(cfg, opt, b, m), data, args.repeats) for m in (False, True)}
            for m in t:
                total[m] += t[m]
            print(
                f"{opt:>9} {b:>5} {t[False]:8.2f} {t[True]:8.2f} "
                f"{100 * (t[True] / t[False] - 1):7.1f}%"
            )
    print(
        f"{'all':>15} {total[False]:8.2f} {total[True]:8.2f} "
        f"{100 * (total[True] / total[False] - 1):7.1f}%"
    )
    print(
        "one measurement, by part (s):",
        ", ".join(
            f"{k} {v:.3f}" for k, v in parts(run_config(cfg, "shb", sizes[0], True), data).items()
        ),
    )


if __name__ == "__main__":
    main()
