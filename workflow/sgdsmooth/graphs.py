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

Whatever the step reads from tensors (a population's per-member η, β and a, the stopping
rule's state with ``freeze``) is read at each replay from the same device tensors, so a
value written into them between replays counts; Python numbers would be baked in. Replays
write into the same output tensors, so ``__call__`` returns copies that a run can keep in its
trace.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

WARMUP_STEPS = 3


def training_state(state: list[torch.Tensor]) -> list[torch.Tensor]:
    """Copies of every tensor a training step changes (parameters, buffers, directions)."""
    return [t.detach().clone() for t in state]


@torch.no_grad()
def restore_training_state(state: list[torch.Tensor], saved: list[torch.Tensor]) -> None:
    """Put ``saved`` back into the same tensors (a captured graph holds their addresses)."""
    for t, old in zip(state, saved):
        t.copy_(old)


class CapturedStep:
    """``step(*inputs)`` recorded as a CUDA graph; calling it copies the inputs in and replays.

    ``step`` must do a complete training step that changes only the tensors in ``state``
    (setting every gradient to None before its backward pass) and return device tensors.
    """

    def __init__(
        self,
        step: Callable[..., tuple[torch.Tensor, ...]],
        inputs: tuple[torch.Tensor, ...],
        state: list[torch.Tensor],
    ):
        self.inputs = tuple(t.clone() for t in inputs)  # clone keeps the memory format
        saved = training_state(state)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):  # warm-up and capture on one side stream
            for _ in range(WARMUP_STEPS):
                step(*self.inputs)
            for t in state:  # the graph allocates the gradients itself
                t.grad = None
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=stream):
                self.outputs = step(*self.inputs)
        torch.cuda.current_stream().wait_stream(stream)
        restore_training_state(state, saved)

    def __call__(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        for static, t in zip(self.inputs, inputs):
            static.copy_(t)
        self.graph.replay()
        return tuple(t.clone() for t in self.outputs)
