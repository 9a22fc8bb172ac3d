"""What the benchmark scripts that keep their results share: the hardware line and the
appended record (one JSON object per run, with the date and torch version)."""

from __future__ import annotations

import datetime
import json
import platform
from pathlib import Path

import torch


def hardware(device: torch.device) -> str:
    """The GPU's name, or the CPU and torch's thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def append_record(path: str | Path, hw: str, *, quiet: bool = False, **fields) -> None:
    """Append one run's results to a JSON-lines file (made if missing) and say where
    (unless ``quiet``)."""
    record = {
        "date": datetime.date.today().isoformat(),
        "hardware": hw,
        "torch": torch.__version__,
        **fields,
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    if not quiet:
        print(f"appended to {path}")
