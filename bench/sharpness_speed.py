"""Time worst-case adaptive sharpness (ρ = 2e-4, ℓ∞, 20 Auto-PGD iterations, batches of 128).

    python bench/sharpness_speed.py [--resnet] [--threads 2]

Prints seconds for the default config's model (small CNN on the first 1024 digits) and,
with --resnet, for a CIFAR ResNet-18 on 1024 CIFAR-shaped images (random weights and
pixels: the cost does not depend on them), on CUDA when present, else the CPU.
"""

from __future__ import annotations

import argparse
import time

import torch

from sgdsmooth.data import load_digits
from sgdsmooth.models import make_model
from sgdsmooth.sharpness import adaptive_sharpness
from sgdsmooth.training import pick_device


def timed(model, x, y) -> tuple[float, float]:
    start = time.perf_counter()
    result = adaptive_sharpness(model, x, y, rho=2e-4, p="inf", iterations=20, batch_size=128)
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start, result.worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resnet", action="store_true")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device()
    data = load_digits().to(device)
    torch.manual_seed(0)
    model = make_model("small_cnn", 10, 1).to(device)
    seconds, value = timed(model, data.normalize(data.train_x[:1024]), data.train_y[:1024])
    print(
        f"small_cnn, 1024 digits, {device}, {args.threads} threads: "
        f"{seconds:.2f} s (sharpness {value:.3g})"
    )
    if args.resnet:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1024, 3, 32, 32, generator=g).to(device)
        y = torch.randint(0, 100, (1024,), generator=g).to(device)
        model = make_model("resnet18", 100, 3).to(device)
        seconds, value = timed(model, x, y)
        print(
            f"resnet18, 1024 images, {device}, {args.threads} threads: "
            f"{seconds:.1f} s (sharpness {value:.3g})"
        )


if __name__ == "__main__":
    main()
