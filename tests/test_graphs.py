"""CUDA-graph capture of the training step (sgdsmooth.graphs). The capture itself needs a
GPU (the CUDA tests below run on a lent one); what makes it exact does not: the training
state put back after the warm-up steps, and where the option applies."""

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from sgdsmooth.config import ConfigError, RunConfig, cell_settings
from sgdsmooth.graphs import restore_training_state, training_state
from sgdsmooth.models import Executor
from sgdsmooth.tables import read_table
from sgdsmooth.training import loop, open_run, train, train_many
from sgdsmooth.training.device import configure
from sgdsmooth.training.population import Population

# Deterministic cuBLAS needs this before cuBLAS starts, i.e. before any test uses CUDA (the
# training sets it too, which is late when another test started CUDA first).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

ROOT = Path(__file__).resolve().parents[1]
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def population(data, cfgs, executor=None):
    """Fresh runs of ``cfgs`` (writing nothing) as one population, at their first step."""
    runs = [open_run(c, None, data) for c in cfgs]
    for r in runs:
        r.begin_epoch()
    return Population(runs, executor or loop.executor_for(cfgs[0]))


def same_runs(a: Population, b: Population) -> None:
    """The two populations' members stand bitwise at the same point."""
    a.release()
    b.release()
    for ra, rb in zip(a.runs, b.runs):
        for k in ra.weights:
            assert torch.equal(ra.weights[k], rb.weights[k]), k
        for k in ra.directions:
            assert torch.equal(ra.directions[k], rb.directions[k]), k


@pytest.mark.parametrize("name, history", [("nshb", 0), ("shb", 2), ("sgd", 2)])
def test_warm_up_steps_leave_no_trace(digits, name, history):
    """What CapturedStep does around its warm-up: save every tensor a step changes
    (``Population._state``), take steps, put them back. The next steps are bitwise those of
    a population that never warmed up, before the first step (no direction yet) and after
    some. A step changing a tensor outside that list (a BatchNorm counter, a direction)
    would show here."""
    cfgs = [RunConfig(optimizer=name, beta=0.9, lr=0.05, batch_size=32, seed=s) for s in (0, 1)]
    pop, twin = population(digits, cfgs), population(digits, cfgs)
    for _ in range(history):
        pop.train_step()
        twin.train_step()
    state = pop._state()
    saved = training_state(state)
    progress = [(r.pos, r.step) for r in pop.runs]
    for _ in range(3):  # the warm-up (on the next batches)
        pop.train_step()
    restore_training_state(state, saved)
    for r, (pos, step) in zip(pop.runs, progress):
        r.pos, r.step = pos, step
    assert [id(t) for t in pop._state()] == [id(t) for t in state]  # refilled, not replaced
    for _ in range(3):
        pop.train_step()
        twin.train_step()
    same_runs(pop, twin)


def test_option_does_nothing_on_a_cpu(digits):
    cfg = RunConfig(batch_size=32, cuda_graph=True)
    pop = population(digits, [cfg])
    pop.train_step()
    assert pop._step == pop.eager_step and pop.runs[0].step == 1


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
# Under ``deterministic`` (the default) the graph replays the very kernels its capture
# recorded, which are those the eager step runs: graphed and eager steps are equal bitwise.
def first_steps(data, k, n=12, **options):
    """``n`` steps of a population of ``k`` NSHB runs on CUDA, deterministic."""
    cfgs = [
        RunConfig(optimizer="nshb", beta=0.9, lr=0.05, batch_size=16, seed=s, **options)
        for s in range(k)
    ]
    configure(torch.device("cuda"), True)
    pop = population(data, cfgs)
    for _ in range(n):
        pop.train_step()
    pop.take()
    return pop


@cuda
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("options", [{}, {"channels_last": True}, {"precision": "bf16"}])
def test_graphed_steps_are_the_eager_steps_bitwise(digits, options, k):
    data = digits.to("cuda")
    eager, graphed = (
        first_steps(data, k, **options),
        first_steps(data, k, cuda_graph=True, **options),
    )
    assert type(graphed._step).__name__ == "CapturedStep"
    assert type(eager._step).__name__ != "CapturedStep"
    for a, b in zip(eager.runs, graphed.runs):
        assert a.trace == b.trace
    same_runs(eager, graphed)
    counts = graphed.runs[0].weights["features.1.num_batches_tracked"]
    assert int(counts) == 12  # the warm-up is undone


@cuda
def test_graphed_runs_write_the_eager_tables_bitwise(tmp_path, digits):
    """Whole CBS runs, alone and as a population, through the pipeline's entry points."""

    def cfgs(graph):
        return [
            RunConfig(
                protocol="cbs",
                optimizer=opt,
                beta=0.9,
                lr=0.05,
                batch_size=32,
                epsilon=0.5,
                max_steps=120,
                seed=s,
                device="cuda",
                cuda_graph=graph,
            )
            for s, opt in enumerate(("shb", "nshb", "sgd"))
        ]

    out = {
        (together, graph): [tmp_path / f"{together}-{graph}-{i}" for i in range(3)]
        for together in (False, True)
        for graph in (False, True)
    }
    for (together, graph), folders in out.items():
        if together:
            train_many(cfgs(graph), folders, digits)
        else:
            for c, f in zip(cfgs(graph), folders):
                train(c, f, digits)
    for together in (False, True):
        for a, b in zip(out[together, False], out[together, True]):
            ta = read_table(a / "metrics.parquet", "cbs_epochs").drop(columns="wall_time")
            tb = read_table(b / "metrics.parquet", "cbs_epochs").drop(columns="wall_time")
            pd.testing.assert_frame_equal(ta, tb, check_exact=True)


@cuda
@pytest.mark.parametrize(
    "member",
    [
        dict(optimizer="shb", lr=0.05, seed=1, epsilon=0.70),  # stops near step 8
        dict(optimizer="sgd", lr=0.3, seed=3, epsilon=5.0, learned_loss=1.8),  # at 23 (gated)
    ],
)
def test_a_run_stopping_between_checks_keeps_its_weights_bitwise(digits, member):
    """On the GPU the host looks at the stopping rule every 25 steps (and at an epoch's end,
    22 steps here); a run that stops in between is frozen on the device, inside the CUDA
    graph: its weights, direction and noise where it stops are bitwise those of a run checked
    after every step (one member: the same kernels either way)."""
    configure(torch.device("cuda"), True)
    cfg = RunConfig(
        protocol="cbs",
        beta=0.9,
        batch_size=64,
        max_steps=40,
        device="cuda",
        cuda_graph=True,
        noise_at_stop=True,
        noise_batches=2,
        noise_per_example=16,
        **member,
    ).validate()
    late, each = (open_run(cfg, None, digits.to("cuda")) for _ in range(2))
    loop.train_runs([late], check_every=25)
    loop.train_runs([each], check_every=1)
    assert late.status == each.status == "reached"
    assert late.stop_step == each.stop_step < late.step  # it was frozen for some steps
    assert [row["step"] for row in late.noise_rows] == [late.stop_step]
    a, b = (pd.DataFrame(r.noise_rows).drop(columns="seconds") for r in (late, each))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for k, v in late.weights.items():
        if "running" not in k and "batches" not in k:  # BatchNorm statistics may move on
            assert torch.equal(v, each.weights[k]), k
    for k, v in late.directions.items():
        assert torch.equal(v, each.directions[k]), k
