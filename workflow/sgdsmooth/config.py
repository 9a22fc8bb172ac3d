"""One run's settings, validated with messages that name the offending key."""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, field

from .names import DATASETS, MODELS, OPTIMIZERS, PRECISIONS, PROTOCOLS, TRAIN_SIZES
from .paths import check_plain_name, path_number


class ConfigError(ValueError):
    """A setting is invalid; the message starts with the key."""


@dataclass
class RunConfig:
    """Everything that determines one training run.

    protocol ``cbs`` trains until the running mean of mini-batch gradient norms reaches
    ``epsilon`` (not before ``min_epochs``, nor before an epoch whose mean training loss is
    at most ``learned_loss``) or ``max_steps`` runs out; protocol ``epochs``
    trains ``epochs`` epochs and evaluates after each.
    """

    protocol: str = "epochs"
    dataset: str = "digits"
    data_root: str = "resources"
    data_subset: int | None = None  # train on this many images of the set (smoke runs); None: all
    model: str = "small_cnn"
    optimizer: str = "sgd"
    lr: float = 0.1
    beta: float = 0.0
    batch_size: int = 32
    seed: int = 0
    epochs: int = 10
    epsilon: float = 0.5
    min_epochs: int = 0
    learned_loss: float | None = (
        None  # the stopping rule is armed only after an epoch with mean loss ≤ this
    )
    max_steps: int = 100_000
    full_grad_epochs: list[int] = field(default_factory=list)
    noise_epochs: list[int] = field(
        default_factory=list
    )  # epochs after which noise.measure runs (K² too)
    noise_at_stop: bool = False  # CBS: measure noise once more where the run stops
    noise_batches: int = 32  # batches of the run's own size b behind the C² estimate
    noise_steps: int = 2  # optimizer steps over which ‖d_t − ∇F_b(x_t)‖² is averaged
    noise_per_example: int = 256  # examples for the per-example C² (0: skip)
    eval_batch_size: int = 1000
    checkpoint_every: int = 1
    augment: bool | None = None
    device: str = "auto"
    precision: str = "fp32"  # training forward pass: fp32, or bf16 autocast (models.Executor)
    channels_last: bool = False
    compile: bool = False
    cuda_graph: bool = (
        False  # replay the training step as one CUDA graph (on CUDA; ignored on a CPU)
    )
    deterministic: bool = True  # deterministic kernels (training.device.configure)

    def validate(self) -> RunConfig:
        def bad(key, why):
            raise ConfigError(f"{key}: {why} (got {getattr(self, key)!r})")

        # Types first, so that no comparison below meets a string (lr: fast) or a scalar
        # where a list belongs (full_grad_epochs: 3), and no 2.5 epochs train as 3.
        for f in dataclasses.fields(self):
            if not _is_kind(f.type, getattr(self, f.name)):
                bad(f.name, f"must be {_KIND_WORDS[f.type]}")
        for key, allowed in (
            ("protocol", PROTOCOLS),
            ("dataset", DATASETS),
            ("model", MODELS),
            ("optimizer", OPTIMIZERS),
            ("precision", PRECISIONS),
        ):
            if getattr(self, key) not in allowed:
                bad(key, f"must be one of {allowed}")
        if not self.lr > 0:
            bad("lr", "must be > 0")
        if not 0 <= self.beta < 1:
            bad("beta", "must be in [0, 1)")
        if not self.epsilon > 0:
            bad("epsilon", "must be > 0")
        if self.batch_size < 1:
            bad("batch_size", "must be ≥ 1")
        if self.model == "mnist_cnn" and self.dataset != "fashion_mnist":
            bad(
                "model",
                "mnist_cnn's head is sized for 28×28 images: use it with dataset fashion_mnist",
            )
        if self.data_subset is not None and not 1 <= self.data_subset <= TRAIN_SIZES[self.dataset]:
            bad("data_subset", f"must be in 1..{TRAIN_SIZES[self.dataset]} or null")
        n = self.data_subset or TRAIN_SIZES[self.dataset]
        if self.batch_size > n:
            bad("batch_size", f"exceeds the {n} training examples of {self.dataset}")
        for key in ("epochs", "max_steps", "checkpoint_every", "eval_batch_size"):
            if getattr(self, key) < 1:
                bad(key, "must be ≥ 1")
        for key in ("min_epochs", "seed", "noise_per_example"):
            if getattr(self, key) < 0:
                bad(key, "must be ≥ 0")
        if self.noise_steps < 1:
            bad("noise_steps", "must be ≥ 1")
        if self.noise_batches < 2:
            bad("noise_batches", "must be ≥ 2")
        for key in ("full_grad_epochs", "noise_epochs"):
            epochs = getattr(self, key)
            if any(e < 1 for e in epochs):
                bad(key, "epochs count from 1")
            # A fixed-epoch run ends after `epochs`: a later epoch would never be measured.
            if self.protocol == "epochs" and any(e > self.epochs for e in epochs):
                bad(key, f"lies beyond the run's last epoch (epochs: {self.epochs})")
        if self.learned_loss is not None and not self.learned_loss > 0:
            bad("learned_loss", "must be > 0 or null")
        if self.compile and self.cuda_graph:
            bad("cuda_graph", "choose compile or cuda_graph, not both")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            bad("device", "must be auto, cpu, cuda or cuda:N")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown key (known: {sorted(names)})")
        return cls(**values).validate()


def _is_kind(kind: str, value) -> bool:
    """Whether ``value`` fits a RunConfig field's annotation (a string here). Booleans are
    not numbers, and a float is not an integer even when whole: YAML's 3.0 is a float."""
    if kind.endswith(" | None"):
        return value is None or _is_kind(kind.removesuffix(" | None"), value)
    if kind == "list[int]":
        return isinstance(value, list | tuple) and all(_is_kind("int", v) for v in value)
    if isinstance(value, bool):
        return kind == "bool"
    return isinstance(
        value, {"int": numbers.Integral, "float": numbers.Real, "str": str, "bool": bool}[kind]
    )


_KIND_WORDS = {
    "int": "an integer",
    "int | None": "an integer or null",
    "float": "a number",
    "float | None": "a number or null",
    "str": "a string",
    "bool": "true or false",
    "bool | None": "true, false or null",
    "list[int]": "a list of integers",
}


def claims_problems(config: dict) -> list[str]:
    """What the schema cannot say about the ``claims`` block of a validated workflow config:
    each threshold must leave a claim able both to hold and to fail. One message per
    problem, starting with the key."""
    c, problems = config["claims"], []
    if c["floor_share"] >= 1:
        problems.append("claims.floor_share: must be < 1 (no share of δ_SHB exceeds 1)")
    if c["early_epoch"] > config["accuracy"]["epochs"]:
        problems.append(
            f"claims.early_epoch: {c['early_epoch']} lies beyond the last epoch of the "
            f"fixed-epoch runs (accuracy.epochs: {config['accuracy']['epochs']})"
        )
    low, high = c["article_delta_range"]
    if not low < high:
        problems.append(
            f"claims.article_delta_range: must be [low, high] with low < high (got [{low}, {high}])"
        )
    return problems


def train_size(config: dict) -> int:
    """Training images a workflow config trains on: ``data_subset`` or the whole set."""
    return config.get("data_subset") or TRAIN_SIZES[config["dataset"]]


def cbs_max_steps(config: dict, batch_size: int) -> int:
    """The step budget of a CBS run at ``batch_size``: ``cbs.max_steps``, or, when
    ``cbs.max_sfo`` is set, ``min(cbs.max_steps, ceil(max_sfo / b))``.

    A budget in SFO (T·b) terms gives every censored run an SFO lower bound of at least
    ``max_sfo`` whatever its batch size (as long as ``max_steps`` does not cap it first), so
    a censored batch size cannot hide below the chosen b*'s SFO merely for lack of steps."""
    c = config["cbs"]
    steps = int(c["max_steps"])
    if c.get("max_sfo") is not None:
        steps = min(steps, -(-int(c["max_sfo"]) // int(batch_size)))
    return steps


def cell_settings(
    config: dict,
    protocol: str,
    optimizer: str,
    lr: float,
    beta: float,
    batch_size: int,
    epsilon: float | None = None,
) -> dict:
    """The RunConfig keys (all but the seed) of one training cell of a workflow config that
    ``config/schema.yaml`` has validated and filled with defaults."""
    train = config["train"]
    graph = int(batch_size) <= train["cuda_graph_max_batch"]
    common = {
        "protocol": protocol,
        "dataset": config["dataset"],
        "data_root": config.get("data_root", "resources"),
        "data_subset": config.get("data_subset"),
        "model": config["model"],
        "optimizer": optimizer,
        "lr": float(lr),
        "beta": float(beta),
        "batch_size": int(batch_size),
        "device": config.get("device", "auto"),
        **{
            k: train[k]
            for k in (
                "eval_batch_size",
                "checkpoint_every",
                "precision",
                "channels_last",
                "compile",
                "deterministic",
            )
        },
        "cuda_graph": graph,
    }
    n = config["noise"]
    if protocol == "cbs":
        c = config["cbs"]
        eps = c["epsilon"] if epsilon is None else epsilon
        return common | {
            "epsilon": float(eps),
            "max_steps": cbs_max_steps(config, batch_size),
            "min_epochs": c["min_epochs"],
            "learned_loss": c.get("learned_loss"),
            "noise_epochs": n["cbs_epochs"],
            "noise_at_stop": n["cbs_at_stop"],
            **{f"noise_{k}": n[k] for k in ("batches", "steps", "per_example")},
        }
    a = config["accuracy"]
    return common | {
        "epochs": a["epochs"],
        "full_grad_epochs": a["full_grad_epochs"],
        "noise_epochs": n["epochs"],
        **{f"noise_{k}": n[k] for k in ("batches", "steps", "per_example")},
    }


# Workflow config values that name a folder: results/<experiment>/, archive/<experiment>/.
PATH_NAMES = ("experiment",)


def check_path_names(config: dict) -> None:
    """Refuse a workflow config whose folder names could leave their folder (``..``, ``.``,
    a '/'): `snakemake archive` empties archive/<experiment>/. Run before the schema, so that
    this message, which says why, is the one shown; a missing key is the schema's to name."""
    for key in PATH_NAMES:
        if key in config:
            check_plain_name(config[key], key)


# A workflow config's grid lists: each value names a folder (a cell, a seed) or a row.
GRID_LISTS = (
    "batch_sizes",
    "cbs.seeds",
    "accuracy.seeds",
    "accuracy.full_grad_epochs",
    "noise.epochs",
    "sharpness.lrs",
    "sharpness.batch_sizes",
)


def check_grids(config: dict) -> None:
    """Refuse a value listed twice in a grid list (``sharpness.lrs: [0.1, 0.1]``, or 1 and
    1.0): both would train into one folder and count as one cell. Values compare as their
    paths write them (paths.path_number, which is exact). Types are the schema's to check."""
    for key in GRID_LISTS:
        values = config
        for part in key.split("."):
            values = values.get(part) if isinstance(values, dict) else None
        if not isinstance(values, list):
            continue
        seen = {}
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                continue
            text = path_number(v)
            if text in seen:
                raise ConfigError(
                    f"{key}: {seen[text]!r} and {v!r} are one value (written {text} in its "
                    "path), listed twice: list each value once"
                )
            seen[text] = v


def check_device(device: str, cuda_devices: int) -> None:
    """Refuse ``device: cuda`` (or ``cuda:N``) on a machine with ``cuda_devices`` CUDA
    devices when it has none (or no device N), in one line: otherwise every training job
    fails on its own with torch's "Found no NVIDIA driver" traceback, and is retried."""
    if not device.startswith("cuda"):
        return
    index = int(device.partition(":")[2] or 0)
    if index >= cuda_devices:
        have = f"only {cuda_devices} CUDA device(s)" if cuda_devices else "no CUDA device"
        raise ConfigError(
            f"device: {device}, but this machine has {have} (torch.cuda): train with "
            "device: auto or cpu here, or run where the GPU is"
        )


# What a training process sets once for all the runs it trains: their data (loaded once),
# device and kernel settings (training.device.configure) and executor (models.Executor).
PROCESS_KEYS = (
    "dataset",
    "data_root",
    "data_subset",
    "device",
    "deterministic",
    "precision",
    "channels_last",
    "compile",
    "cuda_graph",
)


def check_one_process(cfgs: list[RunConfig]) -> None:
    """Refuse runs that cannot train in one process because they differ in a setting the
    process takes once (``PROCESS_KEYS``): the first run's would silently hold for all."""
    for key in PROCESS_KEYS:
        values = {getattr(c, key) for c in cfgs}
        if len(values) > 1:
            raise ConfigError(
                f"{key}: runs trained in one process must agree on it (got "
                f"{sorted(values, key=repr)!r})"
            )
