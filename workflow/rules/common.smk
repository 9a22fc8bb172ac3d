# Config validation, paths and the run grid: the one place that knows where files live.

import os
from types import SimpleNamespace

import yaml

from snakemake.logging import logger
from snakemake.utils import validate

from sgdsmooth import archive, grid
from sgdsmooth.config import (
    cbs_max_steps,
    cell_settings,
    check_device,
    check_grids,
    check_path_names,
    claims_problems,
    train_size,
)
from sgdsmooth.paths import path_number
from sgdsmooth.names import TRAIN_SIZES
from sgdsmooth.sources import library_sources

# Folder names first, with a message that says why: `experiment: ..` would make the archive
# rule empty the checkout (archive/..).
check_path_names(config)
validate(config, "../../config/schema.yaml")


def _whole_numbers(value, schema, key=""):
    """Refuse a float where the schema asks for an integer. JSON Schema counts 3.0 as the
    integer 3, but YAML's 3.0 is a float, which would name paths (b128.0) and count epochs
    as floats: the config must write whole numbers without a decimal point."""
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if "integer" in kinds and "number" not in kinds and isinstance(value, float):
        raise ValueError(
            f"{key}: must be a whole number written without a decimal point (got {value!r})"
        )
    if isinstance(value, dict):
        for k, v in value.items():
            if k in schema.get("properties", {}):
                _whole_numbers(v, schema["properties"][k], f"{key}.{k}".lstrip("."))
    elif isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            _whole_numbers(v, schema["items"], f"{key}[{i}]")


def _check_config(cfg, schema):
    """Checks JSON schema cannot express; each message names its key."""
    _whole_numbers(cfg, schema)
    epochs = cfg["accuracy"]["epochs"]
    for key, listed in (
        ("accuracy.full_grad_epochs", cfg["accuracy"]["full_grad_epochs"]),
        ("noise.epochs", cfg["noise"]["epochs"]),
    ):
        beyond = sorted(e for e in listed if e > epochs)
        if beyond:
            raise ValueError(
                f"{key}: {beyond} lie beyond the last epoch of the fixed-epoch runs "
                f"(accuracy.epochs: {epochs})"
            )
    for problem in claims_problems(cfg):  # thresholds that could not both hold and fail
        raise ValueError(problem)
    low, high = cfg["figures"]["accuracy_bands"]
    if not low < high:
        raise ValueError(
            f"figures.accuracy_bands: must be [low, high] with low < high (got [{low}, {high}])"
        )
    n = train_size(cfg)
    grids = {"batch_sizes": cfg["batch_sizes"]}
    grids["sharpness.batch_sizes"] = cfg["sharpness"].get("batch_sizes", [])
    for key, grid in grids.items():
        too_big = [b for b in grid if b > n]
        if too_big:
            raise ValueError(
                f"{key}: {too_big} exceed the {n} training examples of {cfg['dataset']}"
            )
    if cfg["sharpness"]["lrs"] and "sgd" not in cfg["optimizers"]:
        raise ValueError(
            "sharpness.lrs: Figure 8 studies SGD, so optimizers must include sgd"
        )
    if cfg["model"] == "mnist_cnn" and cfg["dataset"] != "fashion_mnist":
        raise ValueError(
            "model: mnist_cnn's head is sized for 28×28 images: use it with dataset fashion_mnist"
        )
    if cfg.get("data_subset") and cfg["data_subset"] > TRAIN_SIZES[cfg["dataset"]]:
        raise ValueError(
            f"data_subset: exceeds the {TRAIN_SIZES[cfg['dataset']]} training examples of {cfg['dataset']}"
        )
    if cfg["sharpness"]["n_examples"] > n:
        raise ValueError(f"sharpness.n_examples: exceeds the {n} training examples")
    if cfg["train"]["compile"] and cfg["train"]["cuda_graph_max_batch"]:
        raise ValueError(
            "train.cuda_graph_max_batch: choose it or train.compile, not both"
        )


with open(f"{workflow.basedir}/config/schema.yaml") as _fh:
    _check_config(config, yaml.safe_load(_fh))
check_grids(config)  # no value twice in a grid list: two would share one folder

R = f"results/{config['experiment']}"
ENV = "../../envs/sgdsmooth.yaml"  # relative to workflow/rules/
LIB = "workflow/sgdsmooth"
DEVICE = config.get("device", "auto")
GPU = 1 if DEVICE.startswith("cuda") else 0


onstart:
    # device: cuda without CUDA, refused in one line before any job. Here, not at parse
    # time: a dry run plans the article's GPU grid anywhere, under a cluster executor (not
    # local_exec) the jobs run on GPU nodes, not on this submitting host, and only the jobs
    # that ask for a GPU (training, sharpness) need one: a rebuild from an archive does not.
    gpu_jobs = [j for j in workflow.dag.needrun_jobs() if j.resources.get("gpu", 0)]
    if gpu_jobs and workflow.local_exec and not workflow.touch:
        import torch

        try:
            check_device(DEVICE, torch.cuda.device_count())
        except ValueError as err:
            raise SystemExit(str(err))  # one line, not a traceback


TRAIN = config["train"]
# What collect.collapse_settings needs to judge collapsed runs: the data set, its thresholds.
COLLAPSE = {"dataset": config["dataset"], "collapse": config["collapse"]}
# Under SLURM: the account from the user's environment (sbatch's own variable). The
# executor plugin would otherwise guess it from the user's last job; the partition needs
# nothing, since sbatch reads SBATCH_PARTITION itself when no -p is given.
SLURM_ACCOUNT = os.environ.get("SBATCH_ACCOUNT", "")


def lib(*modules):
    """The library sources behind a rule's result, ``modules`` and every library module
    they import (sources.library_sources), so that editing one reruns exactly the rules it
    can change."""
    return [f"{LIB}/{m}.py" for m in library_sources(*modules)]


TRAIN_CODE = lib("training/__init__")  # what every training rule runs


def num(x):
    """How a number appears in a path: 0.1 → '0.1', 512 → '512', 0.0 → '0', and exactly
    (0.1234567 → '0.1234567'): the training rules read η, β and ε back from the path."""
    return path_number(x)


wildcard_constraints:
    opt="sgd|shb|nshb",
    lr=r"[0-9.e+-]+",
    beta=r"[0-9.e+-]+",
    eps=r"[0-9.e+-]+",
    b=r"\d+",
    seed=r"\d+",


CELL = "{opt}/lr{lr}/beta{beta}/b{b}"
CBS_RUN = f"{R}/runs/cbs/eps{{eps}}/{CELL}/seed{{seed}}/metrics.parquet"
EPOCH_RUN = f"{R}/runs/epochs/{CELL}/seed{{seed}}/metrics.parquet"
EPOCH_WEIGHTS = f"{R}/runs/epochs/{CELL}/seed{{seed}}/final.pt"
EPOCH_NOISE = f"{R}/runs/epochs/{CELL}/seed{{seed}}/noise.parquet"
CBS_NOISE = f"{R}/runs/cbs/eps{{eps}}/{CELL}/seed{{seed}}/noise.parquet"
NOISE = config["noise"]
CBS_MEASURED = (
    bool(NOISE["cbs_epochs"]) or NOISE["cbs_at_stop"]
)  # CBS runs write noise too
SHARPNESS_RUN = f"{R}/runs/sharpness/{CELL}/seed{{seed}}/sharpness.parquet"
TABLE = f"{R}/tables/{{name}}.parquet"


def table(name):
    return TABLE.format(name=name)


# `source: archive` rebuilds the figures and the paper from a committed archive/<experiment>/
# (the archive rule) without training: the rules that read tables (and the few other files the
# paper quotes) switch to the archive's copy, while the rules that produce them keep writing
# results/, so no rule claims an archive path and nothing upstream is scheduled.
A = f"archive/{config['experiment']}"
ARCHIVED = config["source"] == "archive"
# The config that results depend on: all of it but where they are read from and archived.
STUDY_CONFIG = {
    k: v
    for k, v in config.items()
    if k not in ("source", "archive_paper", "allow_config_change")
}


def from_source(path):
    """Where a consumer reads ``path`` (a path under results/<experiment>/): the path
    itself, or under `source: archive` the same path in archive/<experiment>/."""
    if not ARCHIVED:
        return path
    assert path.startswith(f"{R}/"), path
    return A + path[len(R) :]


def table_in(name):
    """A table as figures and the paper read it (see from_source)."""
    return from_source(table(name))


# What this config changes from the archive's, listed on the paper's title page (only under
# allow_config_change: otherwise a difference stops the run here).
CONFIG_CHANGES = []
if ARCHIVED:
    if not os.path.exists(f"{A}/stamp.json"):
        raise ValueError(
            f"source: archive, but {A}/stamp.json does not exist: archive a finished run "
            "first (`snakemake archive`), or leave source at results"
        )
    # Before any job: every archived file as stamped (SHA-256), and the config it measured.
    CONFIG_CHANGES = archive.check_rebuild(
        A, STUDY_CONFIG, config["allow_config_change"]
    )
    if CONFIG_CHANGES:
        logger.warning(
            f"source: archive: this config differs from {A}/config.yaml, which the archive "
            "was measured with (allow_config_change: the paper's title page lists it): "
            + "; ".join(CONFIG_CHANGES)
        )


def _paths(pattern, cell_list, seeds, **extra):
    return [
        pattern.format(opt=o, lr=num(lr), beta=num(beta), b=b, seed=s, **extra)
        for o, lr, beta, b in cell_list
        for s in seeds
    ]


# (optimizer, lr, beta, batch size) of the main study and Fig. 8, per protocol: Fig. 8's CBS
# runs cover the main grid too, so that b* can be located at each of its learning rates.
CELLS = {protocol: grid.cells(config, protocol) for protocol in ("cbs", "epochs")}
CBS_SEEDS = config["cbs"]["seeds"]
ACC_SEEDS = config["accuracy"]["seeds"]
ALL_CBS_RUNS = _paths(
    CBS_RUN, CELLS["cbs"], CBS_SEEDS, eps=num(config["cbs"]["epsilon"])
)
ALL_EPOCH_RUNS = _paths(EPOCH_RUN, CELLS["epochs"], ACC_SEEDS)
ALL_EPOCH_WEIGHTS = _paths(EPOCH_WEIGHTS, CELLS["epochs"], ACC_SEEDS)
ALL_SHARPNESS = _paths(SHARPNESS_RUN, grid.sharpness_cells(config), ACC_SEEDS)
ALL_NOISE = _paths(EPOCH_NOISE, CELLS["epochs"], ACC_SEEDS) if NOISE["epochs"] else []
ALL_CBS_NOISE = (
    _paths(CBS_NOISE, CELLS["cbs"], CBS_SEEDS, eps=num(config["cbs"]["epsilon"]))
    if CBS_MEASURED
    else []
)


def run_config(wildcards, protocol):
    """The RunConfig keys of one training cell (everything but the seed)."""
    eps = wildcards.eps if protocol == "cbs" else None
    return cell_settings(
        config, protocol, wildcards.opt, wildcards.lr, wildcards.beta, wildcards.b, eps
    )


def train_together(wildcards):
    """Whether a cell's seeds train together as one population."""
    return grid.together(config, wildcards.b)


# Batch sizes trained by one job each, and the per-cell rules' {b}: any batch size but
# those (\b: the next character is a separator or a dot, not another digit).
POPULATION_B = grid.population_batch_sizes(config)
CELL_B_REGEX = (
    rf"(?!(?:{'|'.join(map(str, POPULATION_B))})\b)\d+" if POPULATION_B else r"\d+"
)


def population_cells(protocol, b):
    """The cells of a population job: every cell of the protocol at batch size ``b``."""
    return [cell for cell in CELLS[protocol] if cell[3] == int(b)]


def population_files(pattern, protocol, b, seeds, **wildcards):
    """A population job's files, cell-major (the order of population_runs), then seed."""
    return _paths(pattern, population_cells(protocol, b), seeds, **wildcards)


def population_runs(protocol, b, eps=None):
    """The RunConfig keys (but the seed) of a population job's cells."""
    return [
        cell_settings(config, protocol, o, lr, beta, b, eps)
        for o, lr, beta, b in population_cells(protocol, b)
    ]


def train_benchmark(protocol, cell):
    """The benchmark file of the job that trains ``cell``: its own, or its Figure 8 group's."""
    o, lr, beta, b = cell
    eps = f"eps{num(config['cbs']['epsilon'])}/" if protocol == "cbs" else ""
    if grid.in_population_job(config, cell):
        return f"{R}/benchmarks/train_{protocol}/{eps}population/b{b}.tsv"
    return (
        f"{R}/benchmarks/train_{protocol}/{eps}{o}/lr{num(lr)}/beta{num(beta)}/b{b}.tsv"
    )


def train_runtime(wildcards, attempt, protocol, cells=1):
    """Minutes for ``cells`` cells on the configured device, with headroom growing per attempt."""
    n = train_size(config)
    if protocol == "cbs":
        seeds, steps = len(CBS_SEEDS), cbs_max_steps(config, wildcards.b)
        images = min(steps * int(wildcards.b), 10**9)
    else:
        seeds, images = len(ACC_SEEDS), config["accuracy"]["epochs"] * n
    # Rough rates (images/s): ResNet-18 on one GPU, the small CNN on one CPU core.
    rate = 8000 if config["model"] == "resnet18" else 15000
    # Capped at a day: longer runs continue after a requeue from their checkpoint.
    return min(int(10 + attempt * cells * seeds * images / rate / 60), 24 * 60)


def data_files():
    """Files a training job reads: CIFAR-100's pickles, or nothing for the shipped digits."""
    if config["dataset"] == "cifar100":
        root = f"{config.get('data_root', 'resources')}/cifar100/cifar-100-python"
        return [f"{root}/{name}" for name in ("train", "test", "meta")]
    return []


def figure_outputs(name):
    """A figure's PDF and PNG, and its caption as drawn (text + rule, code, commit)."""
    caption = f"{R}/figures/{name}.caption.rst"
    return {
        "pdf": f"{R}/figures/{name}.pdf",
        "png": report(
            f"{R}/figures/{name}.png",
            caption=os.path.relpath(caption, f"{workflow.basedir}/workflow/rules"),
            category="Figures",
        ),
        "caption": caption,
    }


def figure_code(name, *modules):
    """What a figure reruns for besides its tables: its code (and the library
    ``modules`` it uses besides) and its caption text."""
    return {
        "code": [
            f"{LIB}/figures/{name}.py",
            f"{LIB}/figures/__init__.py",
            f"{LIB}/tables.py",
            f"{LIB}/archive.py",
        ]
        + lib(*modules),
        "caption": f"workflow/report/{name}.rst",
    }
