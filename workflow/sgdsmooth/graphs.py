"""CUDA-graph capture of one whole training step (forward, backward, gradient norm, update).

At b = 2–64 a ResNet-18 step is a few hundred kernels of microseconds each, and the GPU
waits on Python to launch them. Recorded once as a CUDA graph, a step is one launch.

What a replay needs (and ``CapturedStep`` provides):
- fixed addresses: the batch is copied into static input tensors; parameters, BatchNorm
  buffers, gradients and the optimizer's directions stay the same tensors for the run;
- no host synchronisation inside the step: the step returns device tensors only;
- no random numbers inside the step: augmentation draws from the run's generator before
  the copy, so the graph itself is deterministic;
- capture needs a few eager warm-up steps first (cuDNN picks its kernels, the optimizer
  creates its state). They would train the network, so the training state is saved before
  them and put back, in place, afterwards: the first replayed step is the run's first step.

The learning rate and β are baked into the graph as constants, which is right here: they
are fixed for a run (docs/method.md §2). Replays write into the same output tensors, so ``__call__``
returns copies that a run can keep in its trace.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

WARMUP_STEPS = 3


def training_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Copies of everything a training step changes: parameters, buffers, optimizer state."""
    return {
        "model": [t.detach().clone() for t in (*model.parameters(), *model.buffers())],
        "optimizer": {
            p: {k: v.clone() for k, v in s.items() if torch.is_tensor(v)}
            for p, s in optimizer.state.items()
        },
    }


@torch.no_grad()
def restore_training_state(model: nn.Module, optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """Put ``saved`` back into the same tensors (a captured graph holds their addresses).

    Optimizer state created since ``saved`` is zeroed: for ``optim.Momentum`` a missing
    direction and a zero one give the same next step, d₀ = a·g₀ + β·0.
    """
    for t, old in zip((*model.parameters(), *model.buffers()), saved["model"]):
        t.copy_(old)
    for p, state in optimizer.state.items():
        before = saved["optimizer"].get(p, {})
        for k, v in state.items():
            if torch.is_tensor(v):
                v.copy_(before[k]) if k in before else v.zero_()


class CapturedStep:
    """``step(*inputs)`` recorded as a CUDA graph; calling it copies the inputs in and replays.

    ``step`` must do a complete training step of ``model`` with ``optimizer`` (including
    ``zero_grad(set_to_none=True)`` before its backward pass) and return device tensors.
    """

    def __init__(
        self,
        step: Callable[..., tuple[torch.Tensor, ...]],
        inputs: tuple[torch.Tensor, ...],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
    ):
        self.inputs = tuple(t.clone() for t in inputs)  # clone keeps the memory format
        saved = training_state(model, optimizer)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up and capture on one side stream
            for _ in range(WARMUP_STEPS):
                step(*self.inputs)
            optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients itself
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=stream):
                self.outputs = step(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        restore_training_state(model, optimizer, saved)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for static, t in zip(self.inputs, inputs):
            static.copy_(t)
        self.graph.replay()
        return tuple(t.clone() for t in self.outputs)
