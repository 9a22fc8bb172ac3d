"""Data sets held whole as uint8 tensors, with augmentation applied to whole batches.

- ``digits``:   scikit-learn's handwritten digits (1,797 8×8 grey images, 10 classes),
                shipped inside the package: the embedded default, nothing to download.
- ``cifar100``: CIFAR-100 (50,000 + 10,000 32×32 colour images, 100 classes), fetched once
                by torchvision (which checks the archive's MD5) and read here from its
                python-pickle files.

Augmentation (CIFAR only, as in the authors' code): random crop 32 with zero padding 4,
horizontal flip, rotation by U(−15°, 15°) with nearest-neighbour sampling and zero fill,
then normalisation. It runs on the training device on a whole batch at once.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .names import DATASETS, TRAIN_SIZES  # noqa: F401  (re-exported)

CIFAR100_MEAN = (0.5071, 0.4866, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


@dataclass
class ImageData:
    """A whole data set on one device: uint8 images (N, C, H, W) and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int
    augment: bool

    @property
    def n_train(self) -> int:
        return self.train_x.shape[0]

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    def to(self, device) -> "ImageData":
        move = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        return ImageData(**{**self.__dict__, **move})

    def normalize(self, x_uint8_or_float: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in [0, 255]) → floats (torch's default dtype, float32 unless a test
        asks for float64) normalised with the set's mean and std."""
        x = x_uint8_or_float.to(torch.get_default_dtype()).div_(255.0)
        mean, std = _moments(self.mean, self.std, x.device, x.dtype)
        return (x - mean) / std

    def train_batch(self, idx: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The training examples at ``idx``, augmented if the set asks for it, normalised."""
        x = self.train_x[idx]
        if self.augment:
            x = augment_batch(x.to(torch.get_default_dtype()), generator)
        return self.normalize(x), self.train_y[idx]


@functools.lru_cache(maxsize=16)
def _moments(mean: tuple, std: tuple, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std as (1, C, 1, 1) tensors, made once per device and dtype: on a
    GPU a fresh host-to-device copy every batch would sit on the training step's path."""
    shape = (1, -1, 1, 1)
    return (torch.tensor(mean, device=device, dtype=dtype).view(shape),
            torch.tensor(std, device=device, dtype=dtype).view(shape))


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None) -> torch.Tensor:
    """Zero-pad every image by ``padding`` and cut a random window of the original size."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * padding)
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return out.gather(3, cols)


def random_flip(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Mirror each image left–right with probability ½."""
    flip = torch.rand(x.shape[0], device=x.device, generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


def random_rotation(x: torch.Tensor, degrees: float, generator: torch.Generator | None) -> torch.Tensor:
    """Rotate each image about its centre by U(−degrees, degrees), nearest pixel, zero fill."""
    n = x.shape[0]
    angle = (torch.rand(n, device=x.device, generator=generator) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def augment_batch(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The article's training augmentation on a float batch in [0, 255]."""
    x = random_crop(x, 4, generator)
    x = random_flip(x, generator)
    return random_rotation(x, 15.0, generator)


def _digits_file() -> Path:
    """scikit-learn's shipped digits.csv.gz, found without importing scikit-learn (which
    costs about a second per training job; ``sklearn.datasets.load_digits`` reads the same
    file)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the digits data set ships with scikit-learn: pip install scikit-learn")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"


def load_digits(test_fraction: float = 0.2, split_seed: int = 0) -> ImageData:
    """scikit-learn's digits as uint8 images (pixel values 0–16 scaled to 0–255).

    The train/test split is a fixed permutation drawn with ``split_seed``, stratified by
    class so that both halves keep the class balance.
    """
    table = np.loadtxt(_digits_file(), delimiter=",")  # 64 pixel columns, then the label
    images = np.rint(table[:, :64] * (255.0 / 16.0)).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    rng = np.random.default_rng(split_seed)
    test_idx = []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        test_idx.extend(members[: round(len(members) * test_fraction)])
    test_mask = np.zeros(len(labels), dtype=bool)
    test_mask[test_idx] = True
    train_x, test_x = images[~test_mask], images[test_mask]
    scaled = train_x.astype(np.float64) / 255.0
    return ImageData(
        name="digits",
        train_x=torch.from_numpy(train_x), train_y=torch.from_numpy(labels[~test_mask]),
        test_x=torch.from_numpy(test_x), test_y=torch.from_numpy(labels[test_mask]),
        mean=(float(scaled.mean()),), std=(float(scaled.std()),),
        num_classes=10, augment=False,
    )


def download_cifar100(root: str | Path) -> Path:
    """Fetch CIFAR-100 into ``root`` once; torchvision verifies the archive's MD5."""
    import torchvision

    torchvision.datasets.CIFAR100(str(root), train=True, download=True)
    return Path(root) / "cifar-100-python"


def _read_cifar_pickle(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as fh:
        entry = pickle.load(fh, encoding="latin1")
    images = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return images, np.asarray(entry["fine_labels"], dtype=np.int64)


def load_cifar100(root: str | Path, augment: bool = True) -> ImageData:
    """CIFAR-100 from its python-pickle files (``cifar-100-python/{train,test,meta}``)."""
    folder = Path(root) / "cifar-100-python"
    for name in ("train", "test", "meta"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} is missing: run the data rule (download_cifar100) first")
    with open(folder / "meta", "rb") as fh:
        num_classes = len(pickle.load(fh, encoding="latin1")["fine_label_names"])
    train_x, train_y = _read_cifar_pickle(folder / "train")
    test_x, test_y = _read_cifar_pickle(folder / "test")
    return ImageData(
        name="cifar100",
        train_x=torch.from_numpy(train_x), train_y=torch.from_numpy(train_y),
        test_x=torch.from_numpy(test_x), test_y=torch.from_numpy(test_y),
        mean=CIFAR100_MEAN, std=CIFAR100_STD, num_classes=num_classes, augment=augment,
    )


def load_dataset(name: str, root: str | Path = "resources", augment: bool | None = None) -> ImageData:
    """Load a data set by its config name."""
    if name == "digits":
        data = load_digits()
    elif name == "cifar100":
        data = load_cifar100(Path(root) / "cifar100")
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    if augment is not None:
        data.augment = augment
    return data
