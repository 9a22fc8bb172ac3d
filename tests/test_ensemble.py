"""The fused ensemble is the same computation as its members trained separately."""

import torch

from sgdsmooth import ensemble as E
from sgdsmooth.models import make_model
from sgdsmooth.optim import make_optimizer
from sgdsmooth.train import grad_norm

SEEDS = [0, 1, 2]


def members(name, classes, channels):
    out = []
    for s in SEEDS:
        torch.manual_seed(s)
        out.append(make_model(name, classes, channels))
    return out


def test_packed_forward_equals_each_member_in_both_modes():
    for name, classes, shape in (("small_cnn", 10, (5, 1, 8, 8)), ("resnet18", 100, (2, 3, 32, 32))):
        models = members(name, classes, shape[1])
        packed = E.pack(models)
        xs = [torch.randn(shape, generator=torch.Generator().manual_seed(10 + i)) for i in range(len(models))]
        for train_mode in (False, True):
            for m in [packed, *models]:
                m.train(train_mode)
            out = packed(E.fused_input(xs))
            for i, (m, x) in enumerate(zip(models, xs)):
                torch.testing.assert_close(out[:, i], m(x), rtol=1e-4, atol=1e-5)


def test_unpack_inverts_pack():
    models = members("small_cnn", 10, 1)
    back = E.unpack(E.pack(models), models[0], len(models))
    for a, b in zip(models, back):
        for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
            assert ka == kb and torch.equal(va, vb)


def test_training_steps_match_separate_runs(digits):
    """SHB at b = 64 over one epoch: the fused ensemble against three separate runs with the
    same shuffles, step by step. In float64, so that the comparison is tight: in float32
    rounding differences of 1e-7 grow through training (to 1e-3 after 20 steps here)."""
    b, steps = 64, digits.n_train // 64
    models = [m.double() for m in members("small_cnn", 10, 1)]
    fused = E.FusedTrainer(models, "shb", 0.05, 0.9)
    singles = [make_optimizer("shb", list(m.parameters()), 0.05, 0.9) for m in models]
    perms = [torch.randperm(digits.n_train, generator=torch.Generator().manual_seed(s)) for s in SEEDS]
    for step in range(steps):
        batches = [digits.train_batch(p[step * b : (step + 1) * b], None) for p in perms]
        xs, ys = [x.double() for x, _ in batches], [y for _, y in batches]
        losses, norms = fused.step(xs, ys)
        separate = []
        for m, o, x, y in zip(models, singles, xs, ys):
            o.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(m(x), y)
            loss.backward()
            separate.append((loss.detach(), grad_norm(list(m.parameters()))))
            o.step()
        torch.testing.assert_close(losses, torch.stack([l for l, _ in separate]), rtol=1e-10, atol=0)
        torch.testing.assert_close(norms, torch.stack([n for _, n in separate]), rtol=1e-10, atol=0)
    for m, member in zip(models, E.unpack(fused.model, models[0], len(SEEDS))):
        for (k, a), c in zip(m.state_dict().items(), member.state_dict().values()):
            torch.testing.assert_close(a, c, rtol=1e-9, atol=1e-12, msg=k)
