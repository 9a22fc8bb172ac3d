import pickle

import numpy as np
import pytest
import torch

from sgdsmooth import data as D


def write_tiny_cifar100(root, n_train=40, n_test=20, seed=0):
    """CIFAR-100's python-pickle layout (cifar-100-python/{train,test,meta}) with random pixels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        entry = {
            "filenames": [f"img{i}.png" for i in range(n)],
            "batch_label": f"{name} batch",
            "fine_labels": rng.integers(0, 100, n).tolist(),
            "coarse_labels": rng.integers(0, 20, n).tolist(),
            "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        with open(folder / name, "wb") as fh:
            pickle.dump(entry, fh)
    with open(folder / "meta", "wb") as fh:
        pickle.dump(
            {
                "fine_label_names": [f"c{i}" for i in range(100)],
                "coarse_label_names": [f"s{i}" for i in range(20)],
            },
            fh,
        )
    return root


def test_cifar100_loader_reads_the_pickle_format(tmp_path):
    write_tiny_cifar100(tmp_path)
    data = D.load_cifar100(tmp_path)
    assert data.train_x.shape == (40, 3, 32, 32) and data.train_x.dtype == torch.uint8
    assert data.test_x.shape == (20, 3, 32, 32)
    assert data.num_classes == 100 and data.augment
    # Row-major 3072 bytes = R plane, G plane, B plane.
    with open(tmp_path / "cifar-100-python" / "train", "rb") as fh:
        raw = pickle.load(fh, encoding="latin1")
    assert data.train_x[3, 1, 2, 5] == raw["data"][3][1024 + 2 * 32 + 5]
    assert data.train_y[7] == raw["fine_labels"][7]


def test_cifar100_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train"):
        D.load_cifar100(tmp_path)


def test_digits_split_is_fixed_and_stratified():
    a, b = D.load_digits(), D.load_digits()
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert a.n_train == D.TRAIN_SIZES["digits"] and a.test_x.shape[0] == D.TEST_SIZES["digits"]
    assert a.n_train + a.test_x.shape[0] == 1797
    assert a.train_x.dtype == torch.uint8 and a.train_x.max() == 255
    share = (
        torch.bincount(a.test_y, minlength=10).float()
        / torch.bincount(a.train_y, minlength=10).float()
    )
    assert torch.allclose(share, torch.full((10,), 0.25), atol=0.02)
    x = a.normalize(a.train_x)
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std()) - 1) < 1e-3


def test_digits_are_scikit_learns_digits():
    from sklearn.datasets import load_digits

    sk = load_digits()
    ours = D.load_digits()
    pixels = torch.cat([ours.train_x, ours.test_x]).double() * 16 / 255
    labels = torch.cat([ours.train_y, ours.test_y])
    ref = {(tuple(img.ravel()), int(y)) for img, y in zip(sk.images, sk.target)}
    assert {
        (tuple(x.round().ravel().tolist()), int(y)) for x, y in zip(pixels.numpy(), labels)
    } == ref


def test_random_crop_is_a_shifted_window_with_zero_fill():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32) + 1
    g = torch.Generator().manual_seed(0)
    out = D.random_crop(x, 4, g)
    g = torch.Generator().manual_seed(0)
    dy = torch.randint(0, 9, (2,), generator=g)
    dx = torch.randint(0, 9, (2,), generator=g)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(2):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32])


def test_flip_and_rotation_preserve_shape_and_values():
    x = torch.rand(64, 3, 32, 32) * 255
    g = torch.Generator().manual_seed(1)
    flipped = D.random_flip(x, g)
    same = (flipped == x).flatten(1).all(1)
    mirrored = (flipped == x.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and mirrored.any() and same.any()
    rotated = D.random_rotation(x, 15.0, g)
    # Nearest-neighbour sampling only moves pixels (or fills zeros): no new values appear.
    assert torch.isin(rotated[rotated != 0], x).all()
    assert rotated.shape == x.shape and (rotated == 0).any()  # corners are zero-filled
    assert torch.equal(D.random_rotation(x, 0.0, g), x)  # a zero angle is the identity


def test_augmentation_is_reproducible_from_the_generator():
    x = torch.rand(8, 3, 32, 32) * 255
    a = D.augment_batch(x, torch.Generator().manual_seed(3))
    b = D.augment_batch(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, D.augment_batch(x, torch.Generator().manual_seed(4)))


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset"):
        D.load_dataset("mnist")


def test_data_subset_is_a_fixed_slice_that_keeps_the_sets_normalisation():
    full = D.load_dataset("digits")
    part = D.load_dataset("digits", subset=300)
    assert part.n_train == 300 and part.test_x.shape[0] == round(
        full.test_x.shape[0] * 300 / full.n_train
    )
    assert torch.equal(
        part.train_x, D.load_dataset("digits", subset=300).train_x
    )  # the same slice every time
    # Its images are the set's own, and most classes keep their share.
    rows = {bytes(x.flatten().tolist()) for x in full.train_x}
    assert all(bytes(x.flatten().tolist()) in rows for x in part.train_x)
    assert torch.bincount(part.train_y, minlength=10).min() >= 15
    assert part.mean == full.mean and part.std == full.std
    with pytest.raises(ValueError, match="data_subset"):
        D.load_dataset("digits", subset=full.n_train + 1)


def test_run_config_checks_batch_size_against_the_subset():
    from sgdsmooth.config import ConfigError, RunConfig

    RunConfig(batch_size=256, data_subset=256).validate()
    with pytest.raises(ConfigError, match="batch_size"):
        RunConfig(batch_size=512, data_subset=256).validate()
    with pytest.raises(ConfigError, match="data_subset"):
        RunConfig(data_subset=0).validate()
