"""Training throughput: the usual way, our single-run path, and K runs fused into one network.

    python bench/train_throughput.py                             # ResNet-18, CIFAR-shaped data
    python bench/train_throughput.py --model small_cnn --batch-sizes 8 64 --steps 10  # CPU-sized

(a) baseline: torchvision transforms per image (crop, flip, rotation, normalise) in a
    DataLoader with 2 workers, fp32, one model, torch.optim.SGD(momentum);
(b) ours, one run: the training engine's own step (data on the device as uint8, the
    augmentation on whole batches there, the gradient-norm trace);
(c) ours, fused: ``--members`` runs as one grouped network (sgdsmooth.ensemble), images/s
    counted over all members and divided by K for the per-model rate.
``--bf16``, ``--channels-last``, ``--compile`` and ``--cuda-graph`` switch on the speed options
of (b) and (c) (sgdsmooth.models.Executor); the baseline stays plain fp32.
Images are random uint8 in the shape of ``--dataset`` (CIFAR's for ResNet-18, digits' for the
small CNN unless asked; the cost does not depend on the pixels), so nothing is downloaded, and
they are augmented by that data set's policy. Prints images/s, ratios to (a), and the fraction
of the FLOP floor (3 × the model's forward FLOPs per training image, ``models.forward_flops``:
3.33 GFLOP for ResNet-18 on CIFAR, at --peak-tflops), and appends the table with the hardware,
versions and date to bench/results/train_throughput.jsonl, with the projected time of the
whole ``--config`` grid at the measured rates (for a config of the benchmarked model).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from projection import projected_seconds, rate_points  # bench/
from results_file import append_record, hardware  # bench/
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from workload import read_config  # bench/

from sgdsmooth.config import RunConfig
from sgdsmooth.data import CIFAR100_MEAN, CIFAR100_STD, ImageData
from sgdsmooth.ensemble import FusedTrainer
from sgdsmooth.models import Executor, forward_flops, make_model
from sgdsmooth.names import MODELS
from sgdsmooth.train import Run, pick_device

# Image shape, classes and augmentation policy of each data set (None: not augmented).
SHAPES = {
    "cifar100": ((3, 32, 32), 100, "cifar"),
    "digits": ((1, 8, 8), 10, None),
    "fashion_mnist": ((1, 28, 28), 10, "fashion"),
}


def default_dataset(model: str) -> str:
    """The data set a record of ``model`` was measured on when it does not say (older records)."""
    return "cifar100" if model == "resnet18" else "digits"


def gflop_per_image(model: str, dataset: str) -> float:
    """Training GFLOP per image: three forward passes' worth (forward, and backward twice)."""
    shape, classes, _ = SHAPES[dataset]
    return 3 * forward_flops(make_model(model, classes, shape[0]), shape) / 1e9


def synthetic(n: int, dataset: str) -> ImageData:
    g = torch.Generator().manual_seed(0)
    shape, classes, policy = SHAPES[dataset]
    x = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    y = torch.randint(0, classes, (n,), generator=g)
    mean, std = (CIFAR100_MEAN, CIFAR100_STD) if shape[0] == 3 else ((0.3,), (0.37,))
    data = ImageData(
        "synthetic", x, y, x[:100], y[:100], mean, std, classes, augment=policy is not None
    )
    if policy is not None:
        data.augmentation = policy
    return data


class PerImage(Dataset):
    def __init__(self, data: ImageData):
        self.data = data
        aug = [
            v2.RandomCrop(data.train_x.shape[-1], padding=4),
            v2.RandomHorizontalFlip(),
            v2.RandomRotation(15),
        ]
        self.tf = v2.Compose(
            (aug if data.augment else [])
            + [v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)]
        )

    def __len__(self):
        return self.data.n_train

    def __getitem__(self, i):
        return self.tf(self.data.train_x[i]), self.data.train_y[i]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def baseline(data, model_name, b, steps, device) -> float:
    loader = DataLoader(
        PerImage(data),
        batch_size=b,
        shuffle=True,
        drop_last=True,
        num_workers=2,
        persistent_workers=True,
    )
    model = make_model(model_name, data.num_classes, data.in_channels).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    it = iter(loader)
    start = None
    for i in range(steps + 2):  # two warm-up steps
        if i == 2:
            sync(device)
            start = time.perf_counter()
        x, y = next(it)
        loss = F.cross_entropy(
            model(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    sync(device)
    return steps * b / (time.perf_counter() - start)


def single(data, model_name, b, steps, device, options) -> float:
    run = Run(
        RunConfig(model=model_name, optimizer="shb", beta=0.9, batch_size=b, **options),
        data,
        device,
    )
    run.perm = torch.randperm(data.n_train, device=device, generator=run.generator)
    start = None
    for i in range(steps + 2):
        if i == 2:
            sync(device)
            start = time.perf_counter()
        run.pos %= run.steps_per_epoch
        run.train_step()
    sync(device)
    return steps * b / (time.perf_counter() - start)


def fused(data, model_name, b, steps, device, k, options) -> float:
    models = []
    for s in range(k):
        torch.manual_seed(s)
        models.append(make_model(model_name, data.num_classes, data.in_channels).to(device))
    trainer = FusedTrainer(models, "shb", 0.1, 0.9, Executor(**options))
    gens = [torch.Generator(device=device).manual_seed(s) for s in range(k)]
    perms = [torch.randperm(data.n_train, device=device, generator=g) for g in gens]
    per_epoch = data.n_train // b
    start = None
    for i in range(steps + 2):
        if i == 2:
            sync(device)
            start = time.perf_counter()
        j = i % per_epoch
        batches = [data.train_batch(p[j * b : (j + 1) * b], g) for p, g in zip(perms, gens)]
        trainer.step([x for x, _ in batches], [y for _, y in batches])
    sync(device)
    return steps * b * k / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18", choices=MODELS)
    ap.add_argument(
        "--dataset",
        choices=sorted(SHAPES),
        help="the images' shape (default: the model's usual set)",
    )
    ap.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip (a): on a device where only our rates matter",
    )
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 64, 512, 4096])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--members", type=int, default=7)
    ap.add_argument("--images", type=int, default=50_000)
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    ap.add_argument("--results", default="bench/results/train_throughput.jsonl")
    ap.add_argument("--bf16", action="store_true", help="(b) and (c) autocast to bfloat16")
    ap.add_argument("--channels-last", action="store_true", help="(b) and (c) in NHWC layout")
    ap.add_argument("--compile", action="store_true", help="(b) and (c) with torch.compile")
    ap.add_argument(
        "--cuda-graph", action="store_true", help="(b) and (c) replay each step as a CUDA graph"
    )
    ap.add_argument(
        "--config",
        default="config/paper.yaml",
        help="the grid whose GPU time is projected ('' for none)",
    )
    args = ap.parse_args()
    options = {
        "precision": "bf16" if args.bf16 else "fp32",
        "channels_last": args.channels_last,
        "compile": args.compile,
        "cuda_graph": args.cuda_graph,
    }
    device = pick_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    dataset = args.dataset or default_dataset(args.model)
    data = synthetic(args.images, dataset).to(device)
    gflop = gflop_per_image(args.model, dataset)
    hw = hardware(device)
    print(
        f"{args.model} on {dataset}-shaped images ({gflop:.4g} GFLOP a training image) "
        f"on {hw}; torch {torch.__version__}; {args.steps} timed steps; "
        f"fused: {args.members} members;"
        f" (b), (c): {options}"
    )
    print(
        f"{'b':>5} {'(a) base img/s':>14} {'(b) ours':>10} {'b/a':>5} "
        f"{'(c) fused/model':>15} {'c/a':>5} {'floor %':>8}"
    )
    rows = []
    for b in args.batch_sizes:
        a = math.nan if args.no_baseline else baseline(data, args.model, b, args.steps, device)
        s = single(data, args.model, b, args.steps, device, options)
        f = fused(data, args.model, b, args.steps, device, args.members, options)
        # Share of the FLOP floor's rate reached by the faster path, counting every image trained.
        floor = 100 * max(s, f) * gflop * 1e9 / (args.peak_tflops * 1e12)
        rows.append(
            {
                "batch_size": b,
                "baseline": a,
                "single": s,
                "fused_total": f,
                "fused_per_model": f / args.members,
                "floor_percent": floor,
            }
        )
        print(
            f"{b:>5} {a:>14.0f} {s:>10.0f} {s / a:>5.2f} "
            f"{f / args.members:>15.0f} {f / args.members / a:>5.2f} {floor:>8.2f}"
        )
    cfg = read_config(args.config) if args.config else None
    hours = None
    if cfg and cfg["model"] == args.model and cfg["dataset"] == dataset:
        single_rates, fused_rates = rate_points([{"members": args.members, "rows": rows}])
        hours = sum(projected_seconds(cfg, single_rates, fused_rates[args.members]).values()) / 3600
        print(
            f"projected time of {args.config} ({cfg['model']}) at these rates: "
            f"{hours:,.2f} hours ({hours * 3600:,.0f} s) on this device"
        )
    append_record(
        args.results,
        hw,
        model=args.model,
        dataset=dataset,
        steps=args.steps,
        members=args.members,
        options=options,
        rows=rows,
        projected_hours={args.config: hours} if args.config else {},
    )


if __name__ == "__main__":
    main()
