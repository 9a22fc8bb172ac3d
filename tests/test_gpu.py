"""Training on CUDA: the same steps as on the CPU, reproducible bitwise under
``deterministic``, and a population's members are their runs alone up to rounding.
Runs only where CUDA is present (on a lent GPU)."""

import os

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sgdsmooth.config import RunConfig
from sgdsmooth.data import CIFAR100_MEAN, CIFAR100_STD, ImageData
from sgdsmooth.models import make_model
from sgdsmooth.optim import make_optimizer
from sgdsmooth.sharpness import exact_fp32
from sgdsmooth.tables import read_table
from sgdsmooth.training import loop, open_run, train, train_many
from sgdsmooth.training.population import Population

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

# Deterministic cuBLAS needs this before cuBLAS starts (see tests/test_graphs.py).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@pytest.mark.parametrize("name", ["sgd", "shb", "nshb"])
def test_cuda_steps_match_cpu(digits, name):
    torch.manual_seed(0)
    cpu = make_model("small_cnn", 10, 1)
    gpu = make_model("small_cnn", 10, 1).cuda()
    gpu.load_state_dict(cpu.state_dict())
    opts = [make_optimizer(name, m.parameters(), 0.05, 0.9) for m in (cpu, gpu)]
    g = torch.Generator().manual_seed(1)
    with exact_fp32():
        for _ in range(10):
            x, y = digits.train_batch(torch.randperm(digits.n_train, generator=g)[:64], None)
            for m, o, dev in ((cpu, opts[0], "cpu"), (gpu, opts[1], "cuda")):
                o.zero_grad()
                F.cross_entropy(m(x.to(dev)), y.to(dev)).backward()
                o.step()
    for (k, a), b in zip(cpu.state_dict().items(), gpu.state_dict().values()):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-3, atol=1e-4, msg=k)


def tables(folder, noise=False):
    out = [read_table(folder / "metrics.parquet", "epochs").drop(columns="wall_time")]
    if noise:
        out.append(read_table(folder / "noise.parquet", "noise").drop(columns="seconds"))
    return out


MEMBERS = [
    dict(optimizer="sgd", lr=0.1, seed=0),
    dict(optimizer="shb", lr=0.05, seed=1),
    dict(optimizer="nshb", lr=0.2, seed=2),
]


def cuda_cfgs(**common):
    base = dict(protocol="epochs", beta=0.9, batch_size=64, device="cuda") | common
    return [RunConfig(**(base | m)) for m in MEMBERS]


def test_two_runs_of_one_config_write_identical_tables_under_deterministic(tmp_path, digits):
    """``deterministic`` (the default): the same population trained twice writes the same
    tables and weights, bitwise; augmented batches (drawn on the GPU), noise measurements,
    evaluation included."""
    cfgs = cuda_cfgs(epochs=2, augment=True, noise_epochs=[2], noise_batches=4)
    assert all(c.deterministic for c in cfgs)
    runs = {n: [tmp_path / n / f"run{i}" for i in range(len(cfgs))] for n in ("a", "b")}
    for folders in runs.values():
        train_many(cfgs, folders, digits)
    assert torch.are_deterministic_algorithms_enabled()
    for a, b in zip(runs["a"], runs["b"]):
        for ta, tb in zip(tables(a, noise=True), tables(b, noise=True)):
            pd.testing.assert_frame_equal(ta, tb, check_exact=True)
        wa, wb = torch.load(a / "final.pt"), torch.load(b / "final.pt")
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def relative_errors(together, alone):
    """Per run: the largest relative difference of the epoch's training loss, gradient norm
    and test loss, and the relative difference of the final weights as one vector (a
    tensor near zero, a BatchNorm shift after ten steps, has no meaningful relative error
    of its own)."""
    out = []
    for a, b in zip(together, alone):
        (ta,), (tb,) = tables(a), tables(b)
        cols = ["train_loss", "grad_norm_mean", "test_loss"]
        err = float(((ta[cols] - tb[cols]).abs() / tb[cols].abs()).max().max())
        wa, wb = torch.load(a / "final.pt"), torch.load(b / "final.pt")
        keys = [k for k in wa if wa[k].is_floating_point()]
        diff = sum(float((wa[k] - wb[k]).double().pow(2).sum()) for k in keys)
        size = sum(float(wb[k].double().pow(2).sum()) for k in keys)
        out.append(max(err, (diff / size) ** 0.5))
    return out


# The tolerance: a population of K > 1 computes convolutions by im2col and batched GEMMs,
# a run alone by cuDNN's convolution kernels (implicit GEMM, Winograd, ...): both correct,
# rounding differently. In full float32 (an H200: 1e-7 after ten steps of the small CNN
# and after a ResNet-18 step) 1e-4 bounds the difference with a margin for other GPUs and
# kernels; on a CPU, where cancelling sums round worse, the same comparison measures 7e-6.
# The pipeline runs both in TF32 (training.device: operands rounded to 10 mantissa bits,
# 5e-4), where the kernels' roundings differ from the first product (H200: 1.3e-3 after ten
# small-CNN steps, 5e-4 in a ResNet-18 step's loss and norm, 2e-3 in its weights): 2e-2.
# A member mixed up with another (wrong data, η, BatchNorm statistics) differs at order 1.
TOLERANCE = {"fp32": 1e-4, "tf32": 2e-2}


@pytest.fixture
def precision(request, monkeypatch):
    """The training's CUDA precision: "tf32" as it configures it, or full "fp32"."""
    real = loop.configure

    def configure(device, deterministic):
        real(device, deterministic)
        if request.param == "fp32":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False

    monkeypatch.setattr(loop, "configure", configure)
    yield request.param
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


@pytest.mark.parametrize("precision", ["fp32", "tf32"], indirect=True)
def test_a_population_on_cuda_is_its_members_alone(tmp_path, digits, precision):
    """Three members (SGD, SHB, NSHB at different η and seeds) trained ten steps together
    and alone: the same epoch row and weights within the stated tolerance."""
    data = digits.subset(640)  # 10 steps an epoch at b = 64
    cfgs = cuda_cfgs(epochs=1)
    together = [tmp_path / "together" / f"run{i}" for i in range(3)]
    alone = [tmp_path / "alone" / f"run{i}" for i in range(3)]
    train_many(cfgs, together, data)
    for c, f in zip(cfgs, alone):
        train(c, f, data)
    errors = relative_errors(together, alone)
    print(f"small_cnn {precision}: relative differences {errors}")
    assert max(errors) <= TOLERANCE[precision]
    assert max(errors) > 0  # they do compute differently (the comparison is not vacuous)


def cifar_like(n=64, seed=0):
    """Random CIFAR-100-shaped images (the real set is not in the tests' reach)."""
    g = torch.Generator().manual_seed(seed)
    images = lambda m: torch.randint(0, 256, (m, 3, 32, 32), dtype=torch.uint8, generator=g)  # noqa: E731
    labels = lambda m: torch.randint(0, 100, (m,), generator=g)  # noqa: E731
    return ImageData(
        "cifar100",
        images(n),
        labels(n),
        images(16),
        labels(16),
        CIFAR100_MEAN,
        CIFAR100_STD,
        100,
        True,
    ).to("cuda")


@pytest.mark.parametrize("precision", ["fp32", "tf32"], indirect=True)
def test_a_resnet_populations_step_on_cuda_is_its_members_step(precision):
    """ResNet-18 on augmented 32×32 batches: one step of three members together and alone,
    the same loss, gradient norm and updated weights. One step: from there on ResNet-18's
    ReLUs turn a rounding difference into a jump once an activation that close to its kink
    changes sides (measured on the CPU in float32: 1e-7 in the first step's loss, 1e-3 by
    the third; in float64 every step stays at 1e-15). (The weights after the step: the
    gradient of a convolution in front of a BatchNorm, which removes its input's mean and
    scale, is a sum that mostly cancels; its relative rounding error is the largest here.)"""
    data = cifar_like()
    cfgs = [
        RunConfig(model="resnet18", dataset="cifar100", beta=0.9, batch_size=8, **m)
        for m in MEMBERS
    ]
    loop.configure(torch.device("cuda"), True)

    def step(groups):
        runs = [open_run(c, None, data) for c in cfgs]
        for group in groups:
            pop = Population([runs[i] for i in group], loop.executor_for(cfgs[0]))
            pop.train_step()
            pop.take()
            pop.release()
        return runs

    steps, weights = [], []
    for a, b in zip(step([[0, 1, 2]]), step([[0], [1], [2]])):
        x = torch.tensor([*a.trace["loss"], *a.trace["norm"]])
        y = torch.tensor([*b.trace["loss"], *b.trace["norm"]])
        steps.append(float(((x - y).abs() / y.abs()).max()))
        keys = [k for k in b.weights if b.weights[k].is_floating_point()]
        diff = sum(float((a.weights[k] - b.weights[k]).double().pow(2).sum()) for k in keys)
        size = sum(float(b.weights[k].double().pow(2).sum()) for k in keys)
        weights.append((diff / size) ** 0.5)
    print(f"resnet18 {precision}: loss and norm {steps}, weights {weights}")
    assert max(steps) <= TOLERANCE[precision] and max(weights) <= TOLERANCE[precision]
    assert max(weights) > 0  # they do compute differently (the comparison is not vacuous)


@pytest.mark.parametrize(
    "options",
    [{"channels_last": True}, {"precision": "bf16"}, {"precision": "bf16", "channels_last": True}],
)
def test_speed_options_on_cuda_train_the_same_problem(digits, options):
    losses = {}
    data = digits.to("cuda")
    for name, extra in (("plain", {}), ("fast", options)):
        cfg = RunConfig(optimizer="shb", beta=0.9, batch_size=64, **extra)
        run = open_run(cfg, None, data)
        run.begin_epoch()
        pop = Population([run], loop.executor_for(cfg))
        for _ in range(5):
            pop.train_step()
        pop.take()
        losses[name] = torch.tensor(run.trace["loss"])
    torch.testing.assert_close(losses["fast"], losses["plain"], rtol=3e-2, atol=0)
