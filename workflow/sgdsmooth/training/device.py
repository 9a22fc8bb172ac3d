"""The device a run trains on, and whether its kernels are deterministic.

``train.deterministic`` (on by default: this pipeline's tables are meant to be reproduced)
asks PyTorch for deterministic algorithms everywhere (``torch.use_deterministic_algorithms``;
an operation without one raises instead of silently varying), cuBLAS for a fixed workspace
(``CUBLAS_WORKSPACE_CONFIG``, which must be set before cuBLAS starts) and cuDNN for fixed
algorithms (no ``benchmark`` autotuning, whose choice can change between processes). Then two
runs of one config on one GPU write identical tables; without it they agree to rounding only,
and momentum amplifies the last bit over hundreds of steps (bench/README.md). Deterministic
mode would also fill every new tensor with NaN to expose reads of uninitialised memory; no
code here reads memory it did not write, so that cost is switched off.

On CUDA, float32 convolutions and matrix products both run in TF32 (cuDNN's default for
convolutions; PyTorch's matmul default is full float32). A run alone uses cuDNN's
convolutions and a population batched GEMMs (``training.stacked``): one precision for both
keeps a run's numbers from depending on the size of its population beyond rounding.
"""

from __future__ import annotations

import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    """CUDA when present (or asked for), else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def configure(device: torch.device, deterministic: bool) -> None:
    """Set this process's kernels deterministic or fast (see the module docstring)."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    # Only read in deterministic mode; its default (True) is what the docstring explains away.
    torch.utils.deterministic.fill_uninitialized_memory = False
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic  # fixed shapes: keep the fastest


def device_name(device: torch.device) -> str:
    return str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)
