import pytest
import torch

from sgdsmooth.models import ResNet18, make_model


def test_resnet18_parameter_count():
    # The CIFAR ResNet-18 with 100 classes has 11,220,132 parameters (the article: ≈ 11.7 M
    # quotes the ImageNet variant).
    n = sum(p.numel() for p in ResNet18(100).parameters())
    assert n == 11_220_132


def test_resnet18_shapes_and_stem():
    model = ResNet18(100)
    assert model.stem[0].kernel_size == (3, 3) and model.stem[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    model.eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


def test_small_cnn_on_digits():
    model = make_model("small_cnn", 10, 1)
    assert model(torch.zeros(4, 1, 8, 8)).shape == (4, 10)
    assert sum(p.numel() for p in model.parameters()) < 50_000


def test_unknown_model():
    with pytest.raises(ValueError, match="model"):
        make_model("vgg", 10, 1)
