"""CUDA against CPU: the same model, batches and updates give the same trajectory.
Runs only where CUDA is present (bench/gpu_check.sh on a lent GPU)."""

import pytest
import torch
import torch.nn.functional as F

from sgdsmooth.models import make_model
from sgdsmooth.optim import make_optimizer
from sgdsmooth.sharpness import exact_fp32

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


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


def test_fused_members_on_cuda_match_separate_runs_on_cuda():
    from sgdsmooth.ensemble import FusedTrainer, unpack
    from sgdsmooth.train import grad_norm

    models = []
    for s in range(3):
        torch.manual_seed(s)
        models.append(make_model("resnet18", 100, 3).cuda())
    fused = FusedTrainer(models, "nshb", 0.01, 0.9)
    singles = [make_optimizer("nshb", list(m.parameters()), 0.01, 0.9) for m in models]
    g = torch.Generator().manual_seed(2)
    with exact_fp32():
        for _ in range(3):
            xs = [torch.randn(16, 3, 32, 32, generator=g).cuda() for _ in models]
            ys = [torch.randint(0, 100, (16,), generator=g).cuda() for _ in models]
            losses, norms, _ = fused.step(xs, ys)
            for i, (m, o) in enumerate(zip(models, singles)):
                o.zero_grad()
                loss = F.cross_entropy(m(xs[i]), ys[i])
                loss.backward()
                torch.testing.assert_close(losses[i], loss.detach(), rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(
                    norms[i], grad_norm(list(m.parameters())), rtol=1e-3, atol=1e-5
                )
                o.step()
    for m, member in zip(models, unpack(fused.model, models[0], len(models))):
        for (k, a), b in zip(m.state_dict().items(), member.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=k)


@pytest.mark.parametrize(
    "options",
    [{"channels_last": True}, {"precision": "bf16"}, {"precision": "bf16", "channels_last": True}],
)
def test_speed_options_on_cuda_train_the_same_problem(digits, options):
    from sgdsmooth.config import RunConfig
    from sgdsmooth.train import Run

    losses = {}
    for name, extra in (("plain", {}), ("fast", options)):
        run = Run(
            RunConfig(optimizer="shb", beta=0.9, batch_size=64, **extra),
            digits.to("cuda"),
            torch.device("cuda"),
        )
        run.perm = torch.randperm(digits.n_train, device="cuda", generator=run.generator)
        for _ in range(5):
            run.train_step()
        losses[name] = torch.stack(run.trace["loss"])
    torch.testing.assert_close(losses["fast"], losses["plain"], rtol=3e-2, atol=0)
