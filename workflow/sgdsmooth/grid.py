"""The training grid of a workflow config: its cells, and the jobs that train them.

The workflow's rules (workflow/rules/common.smk) and the benchmarks' workload and GPU-time
projection (bench/workload.py, bench/projection.py) both read the grid from here, so
a projection counts exactly the jobs the workflow runs (tests/test_workflow.py compares
the two on the article's grid). ``cfg`` is a workflow config with the schema's defaults
filled in (Snakemake's ``validate``, or :func:`with_defaults` outside the workflow).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

Cell = tuple[str, float, float, int]  # optimizer, learning rate, momentum β, batch size


def with_defaults(cfg: dict, schema: dict) -> dict:
    """``cfg`` with the defaults of a JSON schema filled in, as Snakemake's ``validate`` does,
    for scripts that read a config without Snakemake (validation stays the workflow's job)."""
    out = copy.deepcopy(cfg)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), dict):
            out[key] = with_defaults(out[key], sub)
    return out


def cells(cfg: dict, protocol: str = "epochs") -> list[Cell]:
    """Every training cell of a protocol: the main study's, and Figure 8's (SGD at each
    sharpness.lrs). Figure 8's networks (protocol "epochs") are trained on sharpness.batch_sizes;
    its CBS runs (protocol "cbs") on those and the main grid together, so that b* can be
    located at every η even where Figure 8 measures a coarser grid of networks."""
    if protocol not in ("cbs", "epochs"):
        raise ValueError(f"protocol must be 'cbs' or 'epochs', got {protocol!r}")
    out = {
        (opt, cfg["lr"], beta if opt != "sgd" else 0.0, b)
        for opt, beta in cfg["optimizers"].items()
        for b in cfg["batch_sizes"]
    }
    sharp = cfg["sharpness"]
    sizes = set(sharp.get("batch_sizes", cfg["batch_sizes"]))
    if protocol == "cbs":
        sizes |= set(cfg["batch_sizes"])
    out |= {("sgd", lr, 0.0, b) for lr in sharp["lrs"] for b in sizes}
    return sorted(out)


def sharpness_cells(cfg: dict) -> list[Cell]:
    """The cells whose trained networks Figure 8 measures."""
    sharp = cfg["sharpness"]
    sizes = sharp.get("batch_sizes", cfg["batch_sizes"])
    return [c for c in cells(cfg) if c[0] == "sgd" and c[1] in sharp["lrs"] and c[3] in sizes]


def together(cfg: dict, batch_size: int) -> bool:
    """Whether a job's runs at this batch size train together as one population (one step
    trains them all), rather than one after another."""
    return int(batch_size) <= cfg["train"]["population_max_batch"]


def population_batch_sizes(cfg: dict) -> list[int]:
    """Batch sizes whose runs of a protocol, every cell and seed, are one job (one
    population): with ``train.population_jobs: batch_size``, those that train together."""
    if cfg["train"]["population_jobs"] != "batch_size":
        return []
    sizes = {cell[3] for protocol in ("cbs", "epochs") for cell in cells(cfg, protocol)}
    return sorted(b for b in sizes if together(cfg, b))


def in_population_job(cfg: dict, cell: Cell) -> bool:
    """Whether a cell is trained by its batch size's population job."""
    return cell[3] in population_batch_sizes(cfg)


@dataclass(frozen=True)
class Job:
    """One training job: the runs one process trains, all at one batch size."""

    protocol: str  # "cbs" or "epochs"
    batch_size: int
    cells: tuple[Cell, ...]
    seeds: tuple[int, ...]
    together: bool  # every run in one population (one step trains them all), else in turn

    @property
    def runs(self) -> int:
        return len(self.cells) * len(self.seeds)


def training_jobs(cfg: dict) -> list[Job]:
    """The training jobs of the workflow: one per cell, or one per population batch size."""
    jobs = []
    for protocol, seeds in (("cbs", cfg["cbs"]["seeds"]), ("epochs", cfg["accuracy"]["seeds"])):
        groups: dict[int, list[Cell]] = {}
        for cell in cells(cfg, protocol):
            if in_population_job(cfg, cell):
                groups.setdefault(cell[3], []).append(cell)
            else:
                jobs.append(Job(protocol, cell[3], (cell,), tuple(seeds), together(cfg, cell[3])))
        jobs += [Job(protocol, b, tuple(g), tuple(seeds), True) for b, g in sorted(groups.items())]
    return jobs
