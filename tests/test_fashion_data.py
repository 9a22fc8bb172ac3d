"""Fashion-MNIST: the idx reader and its checks on tiny files written in the on-disk format,
the search for the files, the fashion augmentation, and (where Debian's package is
installed) the real files."""

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sgdsmooth import data as D
from sgdsmooth.names import DATASETS, TRAIN_SIZES

ROOT = Path(__file__).resolve().parents[1]
FILES = D.FASHION_MNIST_FILES


def write_idx(path, array, magic=None, count=None):
    """``array`` (uint8) as a gzip-compressed idx file; ``magic`` and ``count`` override the
    header's magic number and first dimension. Returns the file's SHA-256."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    dims = list(array.shape)
    if count is not None:
        dims[0] = count
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes(gzip.compress(header + array.tobytes()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_tiny_fashion(folder, n_train=20, n_test=10, seed=0, labels_train=None, **override):
    """The four files with random pixels and labels in ``folder``; ``override`` maps a file
    key (e.g. "train_images") to write_idx keyword arguments. Returns (checksums, arrays)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8)
        if labels_train is None
        else labels_train,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    checksums = {
        FILES[key]: write_idx(folder / FILES[key], a, **override.get(key, {}))
        for key, a in arrays.items()
    }
    return checksums, arrays


TINY_COUNTS = {"train": 20, "test": 10}


def test_names_and_schema_list_fashion_mnist():
    assert "fashion_mnist" in DATASETS and TRAIN_SIZES["fashion_mnist"] == 60_000
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    assert schema["properties"]["dataset"]["enum"] == list(DATASETS)


def test_tiny_files_round_trip_exactly(tmp_path):
    checksums, arrays = write_tiny_fashion(tmp_path)
    data = D.load_fashion_mnist(tmp_path, checksums=checksums, counts=TINY_COUNTS)
    assert data.name == "fashion_mnist" and data.num_classes == 10
    assert data.augment and data.augmentation == "fashion"
    assert data.train_x.shape == (20, 1, 28, 28) and data.test_x.shape == (10, 1, 28, 28)
    assert data.train_x.dtype == torch.uint8 and data.test_x.dtype == torch.uint8
    assert data.train_y.dtype == torch.int64 and data.test_y.dtype == torch.int64
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train_images"])
    assert np.array_equal(data.test_x[:, 0].numpy(), arrays["test_images"])
    assert np.array_equal(data.train_y.numpy(), arrays["train_labels"].astype(np.int64))
    assert np.array_equal(data.test_y.numpy(), arrays["test_labels"].astype(np.int64))
    pixels = arrays["train_images"].astype(np.float64) / 255
    assert data.mean == pytest.approx((pixels.mean(),), abs=1e-12)
    assert data.std == pytest.approx((pixels.std(),), abs=1e-12)
    assert not D.load_fashion_mnist(
        tmp_path, augment=False, checksums=checksums, counts=TINY_COUNTS
    ).augment
    # Counts None: whatever the headers say.
    assert D.load_fashion_mnist(tmp_path, checksums=checksums, counts={}).n_train == 20


def test_load_dataset_looks_in_data_root_then_the_system_folder(tmp_path, monkeypatch):
    root, system = tmp_path / "root", tmp_path / "system"
    checksums_r, arrays_r = write_tiny_fashion(root / "fashion-mnist", seed=1)
    checksums_s, arrays_s = write_tiny_fashion(system, seed=2)
    monkeypatch.setattr(D, "FASHION_MNIST_SYSTEM_DIR", system)
    for name in checksums_r:  # the defaults load_dataset uses, pointed at the tiny files
        monkeypatch.setitem(D.FASHION_MNIST_SHA256, name, checksums_r[name])
    monkeypatch.setitem(D.FASHION_MNIST_COUNTS, "train", 20)
    monkeypatch.setitem(D.FASHION_MNIST_COUNTS, "test", 10)
    data = D.load_dataset("fashion_mnist", root)
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays_r["train_images"]) and data.augment
    assert not D.load_dataset("fashion_mnist", root, augment=False).augment
    # data_root without the files: Debian's folder.
    for name in checksums_s:
        monkeypatch.setitem(D.FASHION_MNIST_SHA256, name, checksums_s[name])
    data = D.load_dataset("fashion_mnist", tmp_path / "empty")
    assert np.array_equal(data.test_y.numpy(), arrays_s["test_labels"].astype(np.int64))
    # A folder with only some of the files does not count.
    (root / "fashion-mnist" / FILES["test_labels"]).unlink()
    assert D.fashion_mnist_folder(root) == system


def test_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as err:
        D.load_dataset("fashion_mnist", tmp_path / "data")
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert (
        str(tmp_path / "data" / "fashion-mnist") in message and str(tmp_path / "nowhere") in message
    )
    write_tiny_fashion(tmp_path / "some")
    (tmp_path / "some" / FILES["test_labels"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz"):
        D.load_fashion_mnist(tmp_path / "some")


def test_wrong_checksum_names_the_file(tmp_path):
    checksums, _ = write_tiny_fashion(tmp_path)
    with pytest.raises(D.DataError, match=r"train-images-idx3-ubyte\.gz.*SHA-256"):
        D.load_fashion_mnist(tmp_path)  # the real files' checksums
    bad = {**checksums, FILES["test_labels"]: "0" * 64}
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte\.gz.*SHA-256"):
        D.load_fashion_mnist(tmp_path, checksums=bad, counts=TINY_COUNTS)
    incomplete = {k: v for k, v in checksums.items() if k != FILES["train_labels"]}
    with pytest.raises(D.DataError, match=r"train-labels-idx1-ubyte\.gz.*no SHA-256"):
        D.load_fashion_mnist(tmp_path, checksums=incomplete, counts=TINY_COUNTS)


def test_truncated_gzip(tmp_path):
    checksums, _ = write_tiny_fashion(tmp_path)
    path = tmp_path / FILES["train_images"]
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    checksums[path.name] = hashlib.sha256(
        path.read_bytes()
    ).hexdigest()  # past the checksum, to the gzip check
    with pytest.raises(D.DataError, match=r"train-images-idx3-ubyte\.gz: not a whole gzip file"):
        D.load_fashion_mnist(tmp_path, checksums=checksums, counts=TINY_COUNTS)
    path.write_bytes(b"not gzip at all")
    checksums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(D.DataError, match="not a whole gzip file"):
        D.load_fashion_mnist(tmp_path, checksums=checksums, counts=TINY_COUNTS)


@pytest.mark.parametrize(
    "key, override, match",
    [
        (
            "train_images",
            {"magic": 0x00000903},
            r"train-images-idx3-ubyte\.gz: idx magic number is 0x00000903, expected 0x00000803",
        ),
        (
            "test_labels",
            {"magic": 0x00000803},
            r"t10k-labels-idx1-ubyte\.gz: idx magic number is 0x00000803, expected 0x00000801",
        ),
        (
            "train_labels",
            {"count": 21},
            r"train-labels-idx1-ubyte\.gz: header says 21 items, expected 20",
        ),
    ],
)
def test_bad_headers(tmp_path, key, override, match):
    checksums, _ = write_tiny_fashion(tmp_path, **{key: override})
    with pytest.raises(D.DataError, match=match):
        D.load_fashion_mnist(tmp_path, checksums=checksums, counts=TINY_COUNTS)


def test_header_count_that_disagrees_with_the_data(tmp_path):
    # No expected count: the data's length must still be what the header says.
    checksums, _ = write_tiny_fashion(tmp_path, test_images={"count": 11})
    with pytest.raises(
        D.DataError, match=r"t10k-images-idx3-ubyte\.gz: 7840 data bytes.*make 8624"
    ):
        D.load_fashion_mnist(tmp_path, checksums=checksums, counts={})


def test_real_counts_are_the_default(tmp_path):
    checksums, _ = write_tiny_fashion(tmp_path)
    with pytest.raises(
        D.DataError, match=r"train-images-idx3-ubyte\.gz: header says 20 items, expected 60000"
    ):
        D.load_fashion_mnist(tmp_path, checksums=checksums)


def test_images_and_labels_must_agree(tmp_path):
    checksums, _ = write_tiny_fashion(tmp_path, labels_train=np.zeros(19, dtype=np.uint8))
    with pytest.raises(D.DataError, match="20 images but .*19 labels"):
        D.load_fashion_mnist(tmp_path, checksums=checksums, counts={})


def test_wrong_image_shape(tmp_path):
    (tmp_path / "x").mkdir()
    sha = write_idx(tmp_path / "x" / "i.gz", np.zeros((3, 27, 28), dtype=np.uint8))
    with pytest.raises(
        D.DataError, match=r"i\.gz: header says items of shape \(27, 28\), expected \(28, 28\)"
    ):
        D.read_idx(tmp_path / "x" / "i.gz", D.IDX_IMAGES_MAGIC, sha, None, (28, 28))


def test_labels_outside_0_to_9(tmp_path):
    labels = np.arange(20, dtype=np.uint8) % 10
    labels[7] = 10
    checksums, _ = write_tiny_fashion(tmp_path, labels_train=labels)
    with pytest.raises(D.DataError, match=r"train-labels-idx1-ubyte\.gz: label 10 outside 0\.\.9"):
        D.load_fashion_mnist(tmp_path, checksums=checksums, counts=TINY_COUNTS)


def _crop_flip_candidates(img, padding):
    """Every crop of ``img`` (C, H, W) with zero padding ``padding``, flipped or not, keyed by
    (row shift, column shift, flipped)."""
    c, h, w = img.shape
    padded = torch.nn.functional.pad(img, (padding,) * 4)
    out = {}
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            out[(dy - padding, dx - padding, False)] = crop
            out[(dy - padding, dx - padding, True)] = crop.flip(2)
    return out


def _which_transform(out, img, padding):
    matches = [k for k, v in _crop_flip_candidates(img, padding).items() if torch.equal(out, v)]
    return matches[0] if matches else None


def test_fashion_augmentation_crops_by_at_most_2_and_flips():
    n = 200
    # Every pixel distinct and non-zero, so that a crop and a flip are told apart from the
    # zero fill.
    x = torch.arange(1, n * 28 * 28 + 1, dtype=torch.float32).view(n, 1, 28, 28)
    out = D.augment_batch(x, torch.Generator().manual_seed(0), "fashion")
    assert out.shape == (n, 1, 28, 28) and out.dtype == x.dtype
    found = [_which_transform(out[i], x[i], 2) for i in range(n)]
    assert None not in found  # a crop within ±2 pixels, flipped or not: nothing else (no rotation)
    shifts = {s for dy, dx, _ in found for s in (dy, dx)}
    assert shifts == {-2, -1, 0, 1, 2}
    flips = [f for _, _, f in found]
    assert any(flips) and not all(flips)
    assert 0.3 < np.mean(flips) < 0.7
    # The CIFAR policy (padding 4, rotation) would not pass the test above.
    cifar = D.augment_batch(x, torch.Generator().manual_seed(0), "cifar")
    assert any(_which_transform(cifar[i], x[i], 2) is None for i in range(n))


def test_train_batch_uses_the_sets_policy(tmp_path):
    checksums, _ = write_tiny_fashion(tmp_path)
    data = D.load_fashion_mnist(tmp_path, checksums=checksums, counts=TINY_COUNTS)
    idx = torch.arange(20)
    x, y = data.train_batch(idx, torch.Generator().manual_seed(5))
    expected = data.normalize(
        D.fashion_augment(data.train_x[idx].float(), torch.Generator().manual_seed(5))
    )
    assert torch.equal(x, expected) and torch.equal(y, data.train_y)
    cifar = dataclasses.replace(data, augmentation="cifar").train_batch(
        idx, torch.Generator().manual_seed(5)
    )[0]
    assert not torch.equal(cifar, x)
    off = dataclasses.replace(data, augment=False)
    assert off.augmentation == "fashion"
    assert torch.equal(
        off.train_batch(idx, torch.Generator().manual_seed(5))[0], data.normalize(data.train_x)
    )
    assert data.to("cpu").augmentation == "fashion"
    with pytest.raises(ValueError, match="augmentation"):
        dataclasses.replace(data, augmentation="mnist")
    with pytest.raises(ValueError, match="augmentation"):
        D.augment_batch(x, None, "mnist")


REAL = D.FASHION_MNIST_SYSTEM_DIR


@pytest.mark.skipif(
    not REAL.is_dir(), reason=f"{REAL} absent: apt-get install dataset-fashion-mnist"
)
def test_the_real_files():
    data = D.load_fashion_mnist(REAL)  # the recorded checksums and counts
    assert data.train_x.shape == (60_000, 1, 28, 28) and data.test_x.shape == (10_000, 1, 28, 28)
    assert data.n_train == TRAIN_SIZES["fashion_mnist"] and data.in_channels == 1
    assert torch.equal(torch.bincount(data.train_y, minlength=10), torch.full((10,), 6000))
    assert torch.equal(torch.bincount(data.test_y, minlength=10), torch.full((10,), 1000))
    assert data.mean == pytest.approx((0.2860,), abs=1e-4) and data.std == pytest.approx(
        (0.3530,), abs=1e-4
    )
    for name, sha in D.FASHION_MNIST_SHA256.items():
        assert hashlib.sha256((REAL / name).read_bytes()).hexdigest() == sha
