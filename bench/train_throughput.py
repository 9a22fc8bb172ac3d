"""Training throughput, side by side in one process: the usual way, one run, a population.

    python bench/train_throughput.py --model mnist_cnn --dataset fashion_mnist --batch-sizes 8
    python bench/train_throughput.py --model resnet18 --batch-sizes 512 --modes graph --bf16 \
        --channels-last
    python bench/train_throughput.py --smoke      # CPU, tiny sizes, seconds (tests/test_bench.py)

(``--smoke``: on the CPU, b capped at 256, K at 2, ResNet-18 replaced by the small CNN, one
timed step: it checks that every mode and flag runs; its records say ``"smoke": true``.)

For each batch size b on the command line it measures, in this order:

(a) ``baseline``: the way a user writes it: the images stay on the CPU (uint8), a DataLoader
    with ``--workers`` worker processes applies the data set's augmentation image by image
    (torchvision), pins the batch and the loop moves it to the device; one plain fp32 model,
    ``torch.optim.SGD(momentum)``, eager steps;
(b) ``eager``: one run of the training engine (``sgdsmooth.training``: a population of one,
    data on the device, augmentation on whole batches there, the gradient-norm trace and
    the stopping rule's host transfer every ``checks_every`` steps), eager steps;
(c) ``graph``: the same run with each step replayed as one CUDA graph (on a CPU: eager);
(d) ``population``: K runs of that model and b (seeds 0..K−1, SGD/SHB/NSHB in turn) trained
    by one stacked step (``training.population.Population``), for each K of ``--populations``,
    graphed on CUDA unless ``--no-population-graph``; a K that does not fit in memory is
    recorded with its error and the larger ones are skipped.

``--protocol cbs`` takes (b)–(d) as CBS runs take them (their rule never fires here): on a
GPU each step then also applies the stopping rule on the device and freezes members that
met it (``Population``'s ``freeze``); measured beside the fixed-epoch step, it says what that
costs. ``projection.py`` projects from fixed-epoch records only.

``--bf16`` and ``--channels-last`` apply to (b)–(d); the baseline stays plain fp32. The
process's kernels are deterministic or not as ``--deterministic/--no-deterministic`` say
(``training.device.configure``, the option ``train.deterministic``; default on, as the
workflow's), the baseline's too; TF32 is as that function sets it (recorded). Images are
random uint8 of the data set's shape (the cost does not depend on the pixels), augmented by
its policy, so nothing is downloaded.

Each measurement warms up (a CUDA graph is captured then), estimates its step time, and times
as many steps as fill ``--seconds`` (between ``--min-steps`` and ``--max-steps``), between
``torch.cuda.synchronize`` calls. It prints one line and appends one JSON record to
``--results``: model, dataset, b, K, mode, options, images/s in all and per member, the
ratio per member to the baseline of the same b in this run, step time, and the share of the
FLOP floor (3 × the model's forward FLOPs per image, ``models.forward_flops``, at
``--peak-tflops``). ``bench/projection.py`` projects a config's GPU time from these records.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from results_file import append_record, hardware  # bench/
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from sgdsmooth.config import RunConfig
from sgdsmooth.data import AUGMENTATIONS, CIFAR100_MEAN, CIFAR100_STD, ImageData
from sgdsmooth.models import Executor, forward_flops, make_model
from sgdsmooth.names import MODELS
from sgdsmooth.training import open_run
from sgdsmooth.training.device import configure, pick_device
from sgdsmooth.training.loop import checks_every
from sgdsmooth.training.population import Population

# Image shape, classes and augmentation policy of each data set (None: not augmented).
SHAPES = {
    "cifar100": ((3, 32, 32), 100, "cifar"),
    "digits": ((1, 8, 8), 10, None),
    "fashion_mnist": ((1, 28, 28), 10, "fashion"),
}
MODES = ("baseline", "eager", "graph", "population")
OPTIMIZERS = ("sgd", "shb", "nshb")


def default_dataset(model: str) -> str:
    """The data set a record of ``model`` was measured on when it does not say (older records)."""
    return {"resnet18": "cifar100", "mnist_cnn": "fashion_mnist"}.get(model, "digits")


def gflop_per_image(model: str, dataset: str) -> float:
    """Training GFLOP per image: three forward passes' worth (forward, and backward twice)."""
    shape, classes, _ = SHAPES[dataset]
    return 3 * forward_flops(make_model(model, classes, shape[0]), shape) / 1e9


def synthetic(n: int, dataset: str) -> ImageData:
    """``n`` random uint8 training images (and 100 test images) of the data set's shape,
    classes and augmentation policy, on the CPU."""
    g = torch.Generator().manual_seed(0)
    shape, classes, policy = SHAPES[dataset]
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    y = torch.randint(0, classes, (n,), generator=g)
    mean, std = (CIFAR100_MEAN, CIFAR100_STD) if shape[0] == 3 else ((0.3,), (0.37,))
    return ImageData(
        dataset,
        x,
        y,
        x[:100],
        y[:100],
        mean,
        std,
        classes,
        augment=policy is not None,
        augmentation=policy or "cifar",
    )


# -- timing ------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    step: Callable[[], None], device: torch.device, args: argparse.Namespace
) -> tuple[int, float]:
    """(steps, seconds) of ``step`` after ``args.warmup`` untimed steps: as many steps as fill
    ``args.seconds`` at the step time of a short probe, within [min_steps, max_steps]. With
    ``--barrier``: after the warm-up, wait for the other processes, then step for
    ``args.seconds`` of wall time, so that processes sharing a device time the same window."""
    for _ in range(args.warmup):
        step()
    sync(device)
    if args.barrier:
        wait_for_all(Path(args.barrier), args.barrier_count)
        start = time.perf_counter()
        n = 0
        while n < args.min_steps or time.perf_counter() - start < args.seconds:
            step()
            n += 1
        sync(device)
        return n, time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.min_steps):
        step()
    sync(device)
    per_step = (time.perf_counter() - start) / args.min_steps
    n = int(min(args.max_steps, max(args.min_steps, args.seconds / max(per_step, 1e-9))))
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return n, time.perf_counter() - start


def wait_for_all(folder: Path, count: int, timeout: float = 300.0) -> None:
    """Say this process is ready (a file in ``folder``) and wait until ``count`` are."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.monotonic() + timeout
    while sum(1 for _ in folder.iterdir()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"--barrier {folder}: {count} processes never got ready")
        time.sleep(0.01)


# -- (a) the usual way ---------------------------------------------------------------------
class PerImage(Dataset):
    """The CPU-resident images, each augmented by the set's policy with torchvision."""

    def __init__(self, data: ImageData):
        self.data = data
        aug = []
        if data.augment:
            policy = AUGMENTATIONS[data.augmentation]
            aug = [
                v2.RandomCrop(data.train_x.shape[-1], padding=policy.padding),
                v2.RandomHorizontalFlip(),
            ]
            if policy.degrees:
                aug.append(v2.RandomRotation(policy.degrees))
        self.tf = v2.Compose(
            aug + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)]
        )

    def __len__(self):
        return self.data.n_train

    def __getitem__(self, i):
        return self.tf(self.data.train_x[i]), self.data.train_y[i]


def baseline_step(cpu_data: ImageData, model_name: str, b: int, device, workers: int):
    """One step of the usual loop, as a callable; the data stay on the CPU (a DataLoader's
    forked workers cannot touch CUDA tensors)."""
    assert cpu_data.train_x.device.type == "cpu"
    loader = DataLoader(
        PerImage(cpu_data),
        batch_size=b,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    torch.manual_seed(0)
    model = make_model(model_name, cpu_data.num_classes, cpu_data.in_channels).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batches = iter(loader)

    def step():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        loss = F.cross_entropy(
            model(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


# -- (b)-(d) the training engine -------------------------------------------------------------
def population_step(
    data: ImageData, model_name: str, b: int, k: int, executor: Executor, protocol: str = "epochs"
):
    """One step of a population of ``k`` runs, as the training loop takes it (with the host
    transfer of the stopping rule's numbers every ``checks_every`` steps); epochs wrap. CBS
    runs get an ε no run reaches."""
    never = {"epsilon": 1e-30, "max_steps": 10**12} if protocol == "cbs" else {}
    options = {
        "precision": executor.precision,
        "channels_last": executor.channels_last,
        "cuda_graph": executor.cuda_graph,
    }
    runs = []
    for i in range(k):
        opt = OPTIMIZERS[i % len(OPTIMIZERS)]
        cfg = RunConfig(
            model=model_name,
            dataset=data.name,
            optimizer=opt,
            lr=0.01,
            beta=0.0 if opt == "sgd" else 0.9,
            batch_size=b,
            seed=i,
            epochs=1_000_000,
            protocol=protocol,
            **never,
            **options,
        )
        runs.append(open_run(cfg, None, data))  # writes nothing
    for r in runs:
        r.begin_epoch()
    every = checks_every(data.train_x.device)
    pop = Population(runs, executor, freeze=every > 1)
    pop.load_epoch()

    def step():
        pop.train_step()
        if len(pop.pending) >= every or runs[0].pos >= runs[0].steps_per_epoch:
            pop.take()
        if runs[0].pos >= runs[0].steps_per_epoch:  # the next epoch's data (no epoch row)
            for r in runs:
                r.trace = {key: [] for key in r.trace}
                r.epoch, r.pos, r.perm = r.epoch + 1, 0, None
                r.begin_epoch()
            pop.load_epoch()

    return step


# -- the command line ------------------------------------------------------------------------
def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist_cnn", choices=MODELS)
    ap.add_argument("--dataset", choices=sorted(SHAPES), help="default: the model's usual set")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    ap.add_argument("--populations", type=int, nargs="*", default=[1, 8, 32, 128], help="K of (d)")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="deterministic kernels (train.deterministic; default on)",
    )
    ap.add_argument(
        "--protocol",
        choices=("epochs", "cbs"),
        default="epochs",
        help="(b)-(d) step as fixed-epoch or as CBS runs (the stopping rule on the device)",
    )
    ap.add_argument("--bf16", action="store_true", help="(b)-(d) autocast to bfloat16")
    ap.add_argument("--channels-last", action="store_true", help="(b)-(d) in NHWC layout")
    ap.add_argument(
        "--population-graph",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="(d) replays each step as a CUDA graph (default on; nothing on a CPU)",
    )
    ap.add_argument("--images", type=int, default=60_000, help="training images (synthetic)")
    ap.add_argument("--workers", type=int, default=4, help="the baseline's DataLoader workers")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds a measurement")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--min-steps", type=int, default=5)
    ap.add_argument("--max-steps", type=int, default=5000)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    ap.add_argument("--barrier", help="concurrency.py: a folder where processes meet")
    ap.add_argument("--barrier-count", type=int, default=1, help="how many meet there")
    ap.add_argument("--results", default="bench/results/throughput.jsonl")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="CPU, tiny sizes: checks that every mode runs (CI); never a result",
    )
    args = ap.parse_args(argv)
    if args.smoke:
        args.device, args.workers = "cpu", 1
        args.seconds, args.warmup, args.min_steps, args.max_steps = 0.0, 1, 1, 1
        args.populations = sorted({min(k, 2) for k in args.populations}) or [2]
        # Larger batches take seconds a step on a CPU: b > 256 runs at 256 (records say so).
        args.batch_sizes = sorted({min(b, 256) for b in args.batch_sizes})
        args.images = 2 * max(args.batch_sizes + [128])  # two steps an epoch or more
        if args.model == "resnet18":
            args.model = "small_cnn"  # the flags are checked, not the network
            args.dataset = args.dataset or "cifar100"
    args.dataset = args.dataset or default_dataset(args.model)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    device = pick_device(args.device)
    configure(device, args.deterministic)
    # As a training job sets it (training.device.configure): TF32 or not, recorded.
    tf32 = device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32
    cpu_data = synthetic(args.images, args.dataset)
    data = cpu_data.to(device)
    gflop = gflop_per_image(args.model, args.dataset)
    hw = hardware(device)
    precision = "bf16" if args.bf16 else "fp32"
    print(
        f"{args.model} on {args.dataset}-shaped images ({gflop:.4g} GFLOP a training image) on "
        f"{hw}; torch {torch.__version__}; deterministic {args.deterministic}; ours in "
        f"{precision}{', channels_last' if args.channels_last else ''}"
        + ("; SMOKE: tiny sizes, not a result" if args.smoke else "")
    )
    print(
        f"{'mode':>10} {'b':>5} {'K':>4} {'img/s':>10} {'per member':>10} {'/base':>6} "
        f"{'ms/step':>8}"
    )
    plan = [("baseline", 1, False)] * ("baseline" in args.modes)
    plan += [("eager", 1, False)] * ("eager" in args.modes)
    plan += [("graph", 1, True)] * ("graph" in args.modes)
    if "population" in args.modes:
        plan += [("population", k, args.population_graph) for k in args.populations]
    for b in args.batch_sizes:
        base = None  # the baseline's rate at this b
        too_big = None  # the smallest population that did not fit: larger ones are skipped
        for mode, k, graph in plan:
            record = {"model": args.model, "dataset": args.dataset, "b": b, "K": k, "mode": mode}
            if mode == "baseline":
                options = {"precision": "fp32", "channels_last": False, "cuda_graph": False}
                record["workers"] = args.workers
            else:
                executor = Executor(precision, args.channels_last, False, graph)
                options = {
                    "precision": precision,
                    "channels_last": args.channels_last,
                    "cuda_graph": graph and device.type == "cuda",
                    "protocol": args.protocol,
                }
            record["options"] = options | {"deterministic": args.deterministic, "tf32": tf32}
            record["smoke"] = args.smoke
            if mode == "population" and too_big is not None and k > too_big:
                record["error"] = f"skipped: K = {too_big} did not fit"
            else:
                try:
                    if mode == "baseline":
                        step = baseline_step(cpu_data, args.model, b, device, args.workers)
                    else:
                        step = population_step(data, args.model, b, k, executor, args.protocol)
                    steps, seconds = timed(step, device, args)
                except (torch.OutOfMemoryError, RuntimeError) as err:
                    record["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
                    if isinstance(err, torch.OutOfMemoryError) and mode == "population":
                        too_big = k
                else:
                    rate = steps * b * k / seconds
                    base = rate if mode == "baseline" else base
                    record |= {
                        "steps": steps,
                        "seconds": seconds,
                        "step_ms": 1000 * seconds / steps,
                        "images_per_s": rate,
                        "per_member": rate / k,
                        "baseline_ratio": rate / k / base if base else None,
                        "floor_percent": 100 * rate * gflop * 1e9 / (args.peak_tflops * 1e12),
                    }
                step = None  # free the population before the next one
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            print_record(record)
            append_record(args.results, hw, quiet=True, **record)
    print(f"appended to {args.results}")


def print_record(r: dict) -> None:
    head = f"{r['mode']:>10} {r['b']:>5} {r['K']:>4}"
    if "error" in r:
        print(f"{head} {r['error']}", flush=True)
        return
    ratio = "" if r["baseline_ratio"] is None else f"{r['baseline_ratio']:.2f}"
    print(
        f"{head} {r['images_per_s']:>10,.0f} {r['per_member']:>10,.0f} {ratio:>6} "
        f"{r['step_ms']:>8.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
