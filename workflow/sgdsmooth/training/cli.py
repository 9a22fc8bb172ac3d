"""The command line: ``python -m sgdsmooth.training --help`` trains one run."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch
import yaml

from ..config import ConfigError, RunConfig
from .loop import train
from .signals import Interrupted

log = logging.getLogger("sgdsmooth.training")


# -- command line ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sgdsmooth.training", description="Train one run (see RunConfig)."
    )
    p.add_argument("--config", help="YAML file with RunConfig keys; flags override it")
    p.add_argument(
        "--out", required=True, help="run folder for metrics.parquet, final.pt, checkpoint.pt"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1, as train.threads): on CPU a run is bitwise "
        "reproducible, and resumes bitwise, at the same thread count",
    )
    for f in dataclasses.fields(RunConfig):
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if f.name in ("full_grad_epochs", "noise_epochs"):
            p.add_argument(f"--{f.name.replace('_', '-')}", type=int, nargs="*", dest=f.name)
        elif str(f.type).startswith("bool"):  # --augment / --no-augment, --compile, ...
            p.add_argument(
                f"--{f.name.replace('_', '-')}",
                action=argparse.BooleanOptionalAction,
                default=None,
                dest=f.name,
            )
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, dest=f.name)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    values = {}
    if args.config:
        values = yaml.safe_load(Path(args.config).read_text()) or {}
    for f in dataclasses.fields(RunConfig):
        if getattr(args, f.name) is not None:
            values[f.name] = getattr(args, f.name)
    if args.threads < 1:
        print("error: --threads: must be at least 1", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    try:
        cfg = RunConfig.from_dict(values)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        train(cfg, args.out)
    except Interrupted as err:
        log.warning("%s", err)
        return 75  # EX_TEMPFAIL: try again, the run resumes
    return 0
