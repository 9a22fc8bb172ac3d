"""One epoch of the default data set: our engine against a baseline written the usual way.

Baseline: a DataLoader over a TensorDataset-style data set whose examples pass one by one
through torchvision transforms (to float, normalise), fp32, torch.optim.SGD(momentum).
Ours: the training engine's own step (whole-batch indexing and normalisation on the
device, the gradient-norm trace). Both run in this process, on the same model and data;
the script prints images/s, the ratio, and the peak resident memory.

    python bench/epoch_throughput.py [--batch-sizes 32 256] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from sgdsmooth.config import RunConfig
from sgdsmooth.data import load_digits
from sgdsmooth.models import make_model
from sgdsmooth.training import open_run
from sgdsmooth.training.loop import executor_for
from sgdsmooth.training.population import Population


class PerSample(Dataset):
    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def baseline_epoch(data, b, seed) -> float:
    tf = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)])
    loader = DataLoader(
        PerSample(data.train_x, data.train_y, tf),
        batch_size=b,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    torch.manual_seed(seed)
    model = make_model("small_cnn", data.num_classes, data.in_channels)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    start = time.perf_counter()
    for x, y in loader:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - start


def our_epoch(data, b, seed, channels_last=False) -> float:
    cfg = RunConfig(optimizer="shb", beta=0.9, batch_size=b, seed=seed, channels_last=channels_last)
    run = open_run(cfg, None, data)  # a run that writes nothing: one population of one
    start = time.perf_counter()
    run.begin_epoch()
    pop = Population([run], executor_for(cfg))
    while run.pos < run.steps_per_epoch:
        pop.train_step()
        pop.take()  # on a CPU the loop checks the stopping rule's numbers every step
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument(
        "--channels-last", action="store_true", help="our engine with train.channels_last"
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_digits()
    print(
        f"digits, small_cnn, {args.threads} threads, torch {torch.__version__}; "
        f"best of {args.repeats} epochs" + ("; ours in channels_last" if args.channels_last else "")
    )
    print(f"{'b':>5} {'baseline img/s':>15} {'ours img/s':>11} {'ratio':>6}")
    for b in args.batch_sizes:
        images = (data.n_train // b) * b
        base = min(baseline_epoch(data, b, s) for s in range(args.repeats))
        ours = min(our_epoch(data, b, s, args.channels_last) for s in range(args.repeats))
        print(f"{b:>5} {images / base:>15.0f} {images / ours:>11.0f} {base / ours:>6.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MiB")


if __name__ == "__main__":
    main()
