"""CUDA-graph capture of the training step (sgdsmooth.graphs). The capture itself needs a
GPU (the CUDA tests run in bench/gpu_check.sh); what makes it exact does not: the training
state put back after the warm-up steps, and where the option applies."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from sgdsmooth.config import ConfigError, RunConfig, cell_settings
from sgdsmooth.graphs import restore_training_state, training_state
from sgdsmooth.models import Executor, make_model
from sgdsmooth.optim import make_optimizer
from sgdsmooth.train import Run

ROOT = Path(__file__).resolve().parents[1]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def steps(model, opt, batches):
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()


def batches(digits, n, seed, b=32):
    g = torch.Generator().manual_seed(seed)
    return [
        digits.train_batch(torch.randperm(digits.n_train, generator=g)[:b], None) for _ in range(n)
    ]


@pytest.mark.parametrize("name, history", [("nshb", 0), ("shb", 2), ("sgd", 2)])
def test_warm_up_steps_leave_no_trace(digits, name, history):
    """Save, take warm-up steps, put back: the next steps are bitwise those of a network
    that never warmed up, before the first step (no direction yet) and after some."""
    torch.manual_seed(0)
    model = make_model("small_cnn", 10, 1)
    opt = make_optimizer(name, model.parameters(), 0.05, 0.9)
    steps(model, opt, batches(digits, history, seed=1))
    twin = make_model("small_cnn", 10, 1)
    twin.load_state_dict(model.state_dict())
    twin_opt = make_optimizer(name, twin.parameters(), 0.05, 0.9)
    twin_opt.load_state_dict(
        copy.deepcopy(opt.state_dict())
    )  # (load_state_dict would share the tensors)

    tensors = [id(t) for t in (*model.parameters(), *model.buffers())]
    saved = training_state(model, opt)
    steps(model, opt, batches(digits, 3, seed=2))  # the warm-up
    restore_training_state(model, opt, saved)
    assert [
        id(t) for t in (*model.parameters(), *model.buffers())
    ] == tensors  # the same tensors, refilled

    after = batches(digits, 3, seed=3)
    steps(model, opt, after)
    steps(twin, twin_opt, after)
    for (k, a), b in zip(model.state_dict().items(), twin.state_dict().values()):
        assert torch.equal(a, b), k


def test_option_does_nothing_on_a_cpu(digits):
    run = Run(RunConfig(batch_size=32, cuda_graph=True), digits, torch.device("cpu"))
    run.perm = torch.randperm(digits.n_train, generator=run.generator)
    run.train_step()
    assert run._step == run.eager_step and run.step == 1


def test_compile_and_cuda_graph_exclude_each_other():
    with pytest.raises(ConfigError, match="cuda_graph"):
        RunConfig(compile=True, cuda_graph=True).validate()
    with pytest.raises(ValueError, match="cuda_graph"):
        Executor(compile=True, cuda_graph=True)


def test_workflow_graphs_the_small_batch_cells():
    validate = pytest.importorskip("snakemake.utils").validate  # (the GPU machine has no snakemake)
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    config["train"]["cuda_graph_max_batch"] = 64
    validate(config, str(ROOT / "config" / "schema.yaml"))
    graphed = {
        b: cell_settings(config, "cbs", "sgd", 0.1, 0.0, b)["cuda_graph"] for b in (2, 64, 128)
    }
    assert graphed == {2: True, 64: True, 128: False}
    RunConfig.from_dict(
        {**cell_settings(config, "epochs", "shb", 0.1, 0.9, 64), "seed": 0}
    )  # a valid run


# -- on a GPU ----------------------------------------------------------------------------
def first_steps(digits, n=12, **options):
    data = digits.to("cuda")
    run = Run(
        RunConfig(optimizer="nshb", beta=0.9, lr=0.05, batch_size=16, **options),
        data,
        torch.device("cuda"),
    )
    run.perm = torch.randperm(data.n_train, device="cuda", generator=run.generator)
    for _ in range(n):
        run.train_step()
    return run


@cuda
@pytest.mark.parametrize("options", [{}, {"channels_last": True}, {"precision": "bf16"}])
def test_graphed_run_takes_the_eager_steps(digits, options):
    eager, graphed = first_steps(digits, **options), first_steps(digits, cuda_graph=True, **options)
    assert type(graphed._step).__name__ == "CapturedStep"
    for key in ("loss", "norm", "correct"):
        torch.testing.assert_close(
            torch.stack(graphed.trace[key]), torch.stack(eager.trace[key]), rtol=1e-5, atol=1e-6
        )
    for (k, a), b in zip(eager.model.state_dict().items(), graphed.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=k)
    assert int(graphed.model.state_dict()["features.1.num_batches_tracked"]) == 12  # warm-up undone


@cuda
def test_graphed_fused_resnets_take_the_eager_steps():
    from sgdsmooth.ensemble import FusedTrainer

    def trainer(graph):
        models = []
        for s in range(3):
            torch.manual_seed(s)
            models.append(make_model("resnet18", 100, 3).cuda())
        return FusedTrainer(
            models, "shb", 0.01, 0.9, Executor(channels_last=True, cuda_graph=graph)
        )

    eager, graphed = trainer(False), trainer(True)
    g = torch.Generator().manual_seed(2)
    for _ in range(4):
        xs = [torch.randn(4, 3, 32, 32, generator=g).cuda() for _ in range(3)]
        ys = [torch.randint(0, 100, (4,), generator=g).cuda() for _ in range(3)]
        for a, b in zip(eager.step(xs, ys), graphed.step(xs, ys)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    for (k, a), b in zip(eager.model.state_dict().items(), graphed.model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=k)


@cuda
def test_graphed_cbs_runs_write_the_eager_tables(tmp_path, digits):
    """Whole CBS runs, separate and fused, through the pipeline's entry point."""
    from sgdsmooth.ensemble import train_fused
    from sgdsmooth.tables import read_table
    from sgdsmooth.train import train

    def cfgs(graph):
        return [
            RunConfig(
                protocol="cbs",
                optimizer="shb",
                beta=0.9,
                lr=0.05,
                batch_size=32,
                epsilon=0.5,
                max_steps=300,
                seed=s,
                device="cuda",
                cuda_graph=graph,
            )
            for s in (0, 1)
        ]

    def tables(folders):
        return [
            read_table(f / "metrics.parquet", "cbs_epochs").drop(columns="wall_time")
            for f in folders
        ]

    for fused in (False, True):
        out = {g: [tmp_path / f"{fused}-{g}-{i}" for i in range(2)] for g in (False, True)}
        for graph, folders in out.items():
            if fused:
                train_fused(cfgs(graph), folders, digits)
            else:
                for c, f in zip(cfgs(graph), folders):
                    train(c, f, digits)
        for a, b in zip(tables(out[False]), tables(out[True])):
            assert list(a["step"]) == list(b["step"])
            torch.testing.assert_close(
                torch.tensor(b.to_numpy()), torch.tensor(a.to_numpy()), rtol=1e-4, atol=1e-6
            )
