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
