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


def test_forward_flops_counts_multiply_adds_of_convolutions_and_linear_layers():
    from torch import nn

    from sgdsmooth.models import forward_flops

    # 3×3 conv, 1 → 2 channels, padding 1 on 4×4: 32 outputs × 9 multiply–adds; then a
    # grouped 1×1 conv 2 → 2 (groups 2): 32 outputs × 1; then linear 32 → 5.
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.BatchNorm2d(2),
        nn.ReLU(),
        nn.Conv2d(2, 2, 1, groups=2),
        nn.Flatten(),
        nn.Linear(32, 5),
    )
    assert forward_flops(net, (1, 4, 4)) == 2 * (32 * 9 + 32 * 1 + 32 * 5)
    assert net.training  # the count leaves the mode as it found it
    # The CIFAR ResNet-18: 0.56 G multiply–adds, the figure usually quoted for it.
    from sgdsmooth.models import make_model

    assert abs(forward_flops(make_model("resnet18", 100, 3), (3, 32, 32)) / 1e9 - 1.11) < 0.01
