"""Data sets held whole as uint8 tensors, with augmentation applied to whole batches.

- ``digits``:        scikit-learn's handwritten digits (1,797 8×8 grey images, 10 classes),
                     shipped inside the package: the embedded default, nothing to download.
- ``cifar100``:      CIFAR-100 (50,000 + 10,000 32×32 colour images, 100 classes), fetched
                     once by torchvision (which checks the archive's MD5) and read here from
                     its python-pickle files.
- ``fashion_mnist``: Fashion-MNIST (60,000 + 10,000 28×28 grey images of garments, 10
                     balanced classes), read from the four original gzip-compressed idx files
                     in ``{data_root}/fashion-mnist/`` or, failing that, where Debian's package
                     ``dataset-fashion-mnist`` puts them (``/usr/share/datasets/fashion-mnist/``).
                     Nothing is downloaded: every file's SHA-256 is checked against the value
                     recorded here (``FASHION_MNIST_SHA256``), and its idx header (magic number,
                     item count, 28×28 shape, data length) and its labels (0–9) are checked too.

Augmentation is a policy per data set (``ImageData.augmentation``), switched on or off by
``ImageData.augment``; it runs on the training device on a whole batch at once, before
normalisation.

- ``"cifar"`` (CIFAR-100, as in the authors' code): random crop 32 with zero padding 4,
  horizontal flip, rotation by U(−15°, 15°) with nearest-neighbour sampling and zero fill.
- ``"fashion"`` (Fashion-MNIST): random crop 28 with zero padding 2 and horizontal flip with
  probability ½; no rotation. The garment classes (shirts, trousers, shoes, bags, …) are
  mirror-symmetric as classes, so a left–right flip keeps the label. The images are centred
  and upright, unlike CIFAR's photographs taken at any tilt, so the rotation meant for those
  is left out: it would show the network garments at angles the test set never has. Padding
  2 on 28 pixels is about the article's 4 on 32 (a shift of up to 7 % of the width versus
  12.5 %: the garments fill more of their frame than CIFAR's objects, so the smaller shift
  keeps them whole).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import importlib.util
import math
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .names import DATASETS, TEST_SIZES, TRAIN_SIZES

CIFAR100_MEAN = (0.5071, 0.4866, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

# The four original Fashion-MNIST files (github.com/zalandoresearch/fashion-mnist), as
# Debian's dataset-fashion-mnist package ships them.
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": (
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"
    ),
    "train-labels-idx1-ubyte.gz": (
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"
    ),
}
# Examples per split: what the headers must say (None: whatever they say, images and labels
# agreeing).
FASHION_MNIST_COUNTS = {"train": TRAIN_SIZES["fashion_mnist"], "test": TEST_SIZES["fashion_mnist"]}
FASHION_MNIST_SUBDIR = "fashion-mnist"  # under data_root
FASHION_MNIST_SYSTEM_DIR = Path(
    "/usr/share/datasets/fashion-mnist"
)  # Debian's dataset-fashion-mnist
FASHION_MNIST_CLASSES = 10
FASHION_MNIST_SHAPE = (28, 28)

IDX_LABELS_MAGIC = 0x00000801  # uint8 data, one dimension
IDX_IMAGES_MAGIC = 0x00000803  # uint8 data, three dimensions


class DataError(ValueError):
    """A data file that is there but not what it should be (checksum, format, contents)."""


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
    augment: bool  # the switch: augment training batches or not
    augmentation: str = "cifar"  # the policy when switched on: a key of AUGMENTATIONS

    def __post_init__(self):
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(
                f"augmentation must be one of {tuple(AUGMENTATIONS)}, got {self.augmentation!r}"
            )

    @property
    def n_train(self) -> int:
        return self.train_x.shape[0]

    @property
    def in_channels(self) -> int:
        return self.train_x.shape[1]

    def to(self, device) -> ImageData:
        move = {k: getattr(self, k).to(device) for k in ("train_x", "train_y", "test_x", "test_y")}
        return ImageData(**{**self.__dict__, **move})

    def normalize(self, x_uint8_or_float: torch.Tensor) -> torch.Tensor:
        """uint8 (or float in [0, 255]) → floats (torch's default dtype, float32 unless a test
        asks for float64) normalised with the set's mean and std."""
        x = x_uint8_or_float.to(torch.get_default_dtype()).div_(255.0)
        mean, std = _moments(self.mean, self.std, x.device, x.dtype)
        return (x - mean) / std

    def subset(self, n_train: int, seed: int = 0) -> ImageData:
        """A fixed slice of the set for smoke runs: ``n_train`` training images drawn without
        replacement with ``seed`` (so the classes keep about their balance), and the test set
        cut in the same proportion. Normalisation and augmentation stay the whole set's."""
        if not 1 <= n_train <= self.n_train:
            raise ValueError(f"data_subset: must be in 1..{self.n_train}, got {n_train}")
        g = torch.Generator().manual_seed(seed)
        train = torch.randperm(self.n_train, generator=g)[:n_train]
        n_test = max(1, round(self.test_x.shape[0] * n_train / self.n_train))
        test = torch.randperm(self.test_x.shape[0], generator=g)[:n_test]
        return dataclasses.replace(
            self,
            train_x=self.train_x[train],
            train_y=self.train_y[train],
            test_x=self.test_x[test],
            test_y=self.test_y[test],
        )

    def draw(self, n: int, generator: torch.Generator | None) -> dict:
        """The augmentation's random numbers for ``n`` training examples ({} when off)."""
        if not self.augment:
            return {}
        return AUGMENTATIONS[self.augmentation].draw(n, generator, self.train_x.device)

    def batch(self, idx: torch.Tensor, draws: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The training examples at ``idx`` augmented with ``draws`` (one per example, from
        ``draw``; {}: as they are), normalised, and their labels."""
        x = self.train_x[idx]
        if draws:
            x = AUGMENTATIONS[self.augmentation].apply(x.to(torch.get_default_dtype()), draws)
        return self.normalize(x), self.train_y[idx]

    def train_batch(
        self, idx: torch.Tensor, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The training examples at ``idx``, augmented with the set's policy if switched on,
        normalised."""
        return self.batch(idx, self.draw(idx.shape[0], generator))


@functools.lru_cache(maxsize=16)
def _moments(
    mean: tuple, std: tuple, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std as (1, C, 1, 1) tensors, made once per device and dtype: on a
    GPU a fresh host-to-device copy every batch would sit on the training step's path."""
    shape = (1, -1, 1, 1)
    return (
        torch.tensor(mean, device=device, dtype=dtype).view(shape),
        torch.tensor(std, device=device, dtype=dtype).view(shape),
    )


def draw_crop(
    n: int, padding: int, generator: torch.Generator | None, device=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random window offsets (dy, dx) in 0..2·padding for ``n`` images."""
    dy = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), device=device, generator=generator)
    return dy, dx


def crop(x: torch.Tensor, padding: int, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Zero-pad every image by ``padding`` and cut the window of the original size at
    (dy, dx)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = (
        (dy[:, None] + torch.arange(h, device=x.device))
        .view(n, 1, h, 1)
        .expand(n, c, h, w + 2 * padding)
    )
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return out.gather(3, cols)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None) -> torch.Tensor:
    """Zero-pad every image by ``padding`` and cut a random window of the original size."""
    return crop(x, padding, *draw_crop(x.shape[0], padding, generator, x.device))


def draw_flip(n: int, generator: torch.Generator | None, device=None) -> torch.Tensor:
    """Which of ``n`` images to mirror: each with probability ½."""
    return torch.rand(n, device=device, generator=generator) < 0.5


def flip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror the images where ``mask`` is set left–right."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def random_flip(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Mirror each image left–right with probability ½."""
    return flip(x, draw_flip(x.shape[0], generator, x.device))


def draw_rotation(
    n: int, degrees: float, generator: torch.Generator | None, device=None
) -> torch.Tensor:
    """Rotation angles in radians, U(−degrees, degrees), for ``n`` images."""
    return (torch.rand(n, device=device, generator=generator) * 2 - 1) * math.radians(degrees)


def rotate(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre by its angle, nearest pixel, zero fill."""
    cos, sin = angle.to(x.dtype).cos(), angle.to(x.dtype).sin()
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def random_rotation(
    x: torch.Tensor, degrees: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Rotate each image about its centre by U(−degrees, degrees), nearest pixel, zero fill."""
    return rotate(x, draw_rotation(x.shape[0], degrees, generator, x.device))


@dataclass(frozen=True)
class Augmentation:
    """A policy: crop with zero ``padding``, flip, and rotate by up to ``degrees`` (0: none).

    Its random numbers are drawn apart from their use (``draw``, then ``apply``), so that a
    run can draw a whole epoch's at once and a population of runs can augment all its
    members' batches in one pass, each with its own draws."""

    padding: int
    degrees: float = 0.0

    def draw(self, n: int, generator: torch.Generator | None, device=None) -> dict:
        dy, dx = draw_crop(n, self.padding, generator, device)
        draws = {"dy": dy, "dx": dx, "flip": draw_flip(n, generator, device)}
        if self.degrees:
            draws["angle"] = draw_rotation(n, self.degrees, generator, device)
        return draws

    def apply(self, x: torch.Tensor, draws: dict) -> torch.Tensor:
        x = flip(crop(x, self.padding, draws["dy"], draws["dx"]), draws["flip"])
        return rotate(x, draws["angle"]) if self.degrees else x


# The article's CIFAR augmentation (crop with padding 4, flip, rotation by up to 15°), and
# Fashion-MNIST's (crop with padding 2, flip, no rotation: module docstring).
AUGMENTATIONS = {"cifar": Augmentation(4, 15.0), "fashion": Augmentation(2)}


def cifar_augment(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The article's CIFAR augmentation: crop with padding 4, flip, rotation by up to 15°."""
    return augment_batch(x, generator, "cifar")


def fashion_augment(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Fashion-MNIST's augmentation: crop with padding 2, flip, no rotation (module docstring)."""
    return augment_batch(x, generator, "fashion")


def augmentation(policy: str) -> Augmentation:
    try:
        return AUGMENTATIONS[policy]
    except KeyError:
        raise ValueError(
            f"augmentation must be one of {tuple(AUGMENTATIONS)}, got {policy!r}"
        ) from None


def augment_batch(
    x: torch.Tensor, generator: torch.Generator | None, policy: str = "cifar"
) -> torch.Tensor:
    """A float batch in [0, 255] augmented with the named policy (default: the article's)."""
    aug = augmentation(policy)
    return aug.apply(x, aug.draw(x.shape[0], generator, x.device))


def _digits_file() -> Path:
    """scikit-learn's shipped digits.csv.gz, found without importing scikit-learn (which
    costs about a second per training job; ``sklearn.datasets.load_digits`` reads the same
    file)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the digits data set ships with scikit-learn: pip install scikit-learn"
        )
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
        train_x=torch.from_numpy(train_x),
        train_y=torch.from_numpy(labels[~test_mask]),
        test_x=torch.from_numpy(test_x),
        test_y=torch.from_numpy(labels[test_mask]),
        mean=(float(scaled.mean()),),
        std=(float(scaled.std()),),
        num_classes=10,
        augment=False,  # switched on by a config, it applies CIFAR's policy as before
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
            raise FileNotFoundError(
                f"{folder / name} is missing: run the data rule (download_cifar100) first"
            )
    with open(folder / "meta", "rb") as fh:
        num_classes = len(pickle.load(fh, encoding="latin1")["fine_label_names"])
    train_x, train_y = _read_cifar_pickle(folder / "train")
    test_x, test_y = _read_cifar_pickle(folder / "test")
    return ImageData(
        name="cifar100",
        train_x=torch.from_numpy(train_x),
        train_y=torch.from_numpy(train_y),
        test_x=torch.from_numpy(test_x),
        test_y=torch.from_numpy(test_y),
        mean=CIFAR100_MEAN,
        std=CIFAR100_STD,
        num_classes=num_classes,
        augment=augment,
    )


def read_idx(
    path: str | Path,
    magic: int,
    sha256: str,
    count: int | None = None,
    item_shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """One gzip-compressed idx file as a uint8 array (count, *item_shape), every step checked.

    The idx format: a big-endian uint32 magic number (0x0000 08 ND: uint8 data with ND
    dimensions), ND big-endian uint32 dimension sizes, then the data, row-major. Raises
    DataError naming the file when its SHA-256 is not ``sha256``, when it is not a whole
    gzip stream, when the magic number is not ``magic``, when the first dimension is not
    ``count`` or the others not ``item_shape`` (each when given), or when the data are not
    exactly as long as the dimensions say.
    """
    path = Path(path)
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise DataError(
            f"{path}: SHA-256 is {digest}, expected {sha256}: "
            "the file is damaged or not the original"
        )
    try:
        raw = bytearray(
            gzip.decompress(blob)
        )  # a bytearray: writable, so torch.from_numpy takes it as is
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: not a whole gzip file ({err})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an idx header")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: idx magic number is 0x{found:08x}, expected 0x{magic:08x}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(
            f"{path}: {len(raw)} bytes, too short for an idx header of {ndim} dimensions"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if count is not None and dims[0] != count:
        raise DataError(f"{path}: header says {dims[0]} items, expected {count}")
    if item_shape is not None and dims[1:] != tuple(item_shape):
        raise DataError(
            f"{path}: header says items of shape {dims[1:]}, expected {tuple(item_shape)}"
        )
    size = math.prod(dims)
    if len(raw) - header != size:
        raise DataError(
            f"{path}: {len(raw) - header} data bytes, but the header's dimensions {dims} "
            f"make {size}: the header count disagrees with the data"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _uint8_moments(x: np.ndarray) -> tuple[float, float]:
    """Mean and (population) std of uint8 pixels scaled to [0, 1], exact from a 256-bin
    histogram: no float copy of the whole set."""
    hist = np.bincount(x.ravel(), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = hist.sum()
    mean = float(hist @ values / n)
    var = float(hist @ (values - mean) ** 2 / n)
    return mean, math.sqrt(var)


def load_fashion_mnist(
    root: str | Path,
    augment: bool = True,
    checksums: dict[str, str] = FASHION_MNIST_SHA256,
    counts: dict[str, int | None] = FASHION_MNIST_COUNTS,
) -> ImageData:
    """Fashion-MNIST from the four idx files directly inside the folder ``root``.

    ``checksums`` maps each file name to its SHA-256 (default: the original files');
    ``counts`` the number of examples each split must have (default: 60,000 and 10,000;
    None for a split: whatever its header says). Raises FileNotFoundError when a file is
    missing, DataError when one is damaged or malformed (see ``read_idx``).
    """
    folder = Path(root)
    missing = [name for name in FASHION_MNIST_FILES.values() if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks the Fashion-MNIST file(s) {', '.join(missing)}")
    arrays = {}
    for split in ("train", "test"):
        images_name = FASHION_MNIST_FILES[f"{split}_images"]
        labels_name = FASHION_MNIST_FILES[f"{split}_labels"]
        for name in (images_name, labels_name):
            if name not in checksums:
                raise DataError(f"{folder / name}: no SHA-256 recorded for it")
        n = counts.get(split)
        x = read_idx(
            folder / images_name, IDX_IMAGES_MAGIC, checksums[images_name], n, FASHION_MNIST_SHAPE
        )
        y = read_idx(folder / labels_name, IDX_LABELS_MAGIC, checksums[labels_name], n)
        if x.shape[0] != y.shape[0]:
            raise DataError(
                f"{folder / images_name} holds {x.shape[0]} images but "
                f"{folder / labels_name} {y.shape[0]} labels"
            )
        if y.size and y.max() >= FASHION_MNIST_CLASSES:
            raise DataError(
                f"{folder / labels_name}: label {int(y.max())} "
                f"outside 0..{FASHION_MNIST_CLASSES - 1}"
            )
        arrays[split] = (x[:, None], y.astype(np.int64))  # (N, 1, 28, 28): one grey channel
    (train_x, train_y), (test_x, test_y) = arrays["train"], arrays["test"]
    mean, std = _uint8_moments(train_x)
    return ImageData(
        name="fashion_mnist",
        train_x=torch.from_numpy(train_x),
        train_y=torch.from_numpy(train_y),
        test_x=torch.from_numpy(test_x),
        test_y=torch.from_numpy(test_y),
        mean=(mean,),
        std=(std,),
        num_classes=FASHION_MNIST_CLASSES,
        augment=augment,
        augmentation="fashion",
    )


def fashion_mnist_folder(root: str | Path = "resources") -> Path:
    """The first folder holding all four Fashion-MNIST files: ``{root}/fashion-mnist/``,
    then Debian's ``/usr/share/datasets/fashion-mnist/``."""
    candidates = (Path(root) / FASHION_MNIST_SUBDIR, FASHION_MNIST_SYSTEM_DIR)
    for folder in candidates:
        if all((folder / name).is_file() for name in FASHION_MNIST_FILES.values()):
            return folder
    raise FileNotFoundError(
        f"Fashion-MNIST not found: neither {candidates[0]}/ nor {candidates[1]}/ "
        f"holds all four files ({', '.join(FASHION_MNIST_FILES.values())}). "
        f"Install the Debian package with `apt-get install dataset-fashion-mnist` "
        f"(bin/setup does so as root), or put the four files in {candidates[0]}/."
    )


def load_dataset(
    name: str,
    root: str | Path = "resources",
    augment: bool | None = None,
    subset: int | None = None,
) -> ImageData:
    """Load a data set by its config name; ``root`` is the config's ``data_root``; ``subset``
    (the config's ``data_subset``) keeps that many training images (``ImageData.subset``)."""
    if name == "digits":
        data = load_digits()
    elif name == "cifar100":
        data = load_cifar100(Path(root) / "cifar100")
    elif name == "fashion_mnist":
        data = load_fashion_mnist(fashion_mnist_folder(root))
    else:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    if augment is not None:
        data.augment = augment
    return data if subset is None else data.subset(subset)
