"""The networks, chosen by name: the CIFAR ResNet-18 of the article and a small CNN."""

from __future__ import annotations

import torch
from torch import nn

from .names import MODELS, PRECISIONS


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm and an identity (or 1×1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3×3 stride-1 stem, no max-pool, BasicBlocks [2,2,2,2], widths 64–512."""

    def __init__(self, num_classes: int = 100, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
        )
        layers, cin = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, width, stride), BasicBlock(width, width, 1)]
            cin = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class SmallCNN(nn.Module):
    """Three conv–BN–ReLU layers and a linear head: sized for 8×8 digits on a CPU.

    It keeps BatchNorm so that the BatchNorm questions of the article (train vs eval mode
    for sharpness and full gradients) arise in the default config as they do for ResNet-18.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 16):
        super().__init__()

        def block(cin, cout):
            return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(in_channels, width),
            *block(width, 2 * width),
            nn.MaxPool2d(2),
            *block(2 * width, 2 * width),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class MnistCNN(nn.Module):
    """Two conv–BN–ReLU–max-pool blocks (32 and 64 channels) and a linear head over the
    flattened 7×7 map: sized for 28×28 images (Fashion-MNIST) on a GPU.

    The flattened head, unlike SmallCNN's global average, keeps where a feature is, which
    garments need, and it learns Fashion-MNIST in a few epochs; BatchNorm stays for the same
    reason as in SmallCNN. About 50,000 parameters and 7.7 MFLOP a forward pass (ResNet-18 on
    CIFAR: 11.2 M and 1.11 GFLOP)."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, width: int = 32, side: int = 28
    ):
        super().__init__()

        def block(cin, cout):
            return [
                nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]

        self.features = nn.Sequential(*block(in_channels, width), *block(width, 2 * width))
        self.head = nn.Linear(2 * width * (side // 4) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def make_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """Build a model by its config name."""
    if name == "resnet18":
        return ResNet18(num_classes, in_channels)
    if name == "small_cnn":
        return SmallCNN(num_classes, in_channels)
    if name == "mnist_cnn":
        return MnistCNN(num_classes, in_channels)
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")


class Executor:
    """How a network runs its training steps: the speed options of a run.

    ``channels_last`` (NHWC memory, the layout GPU convolution kernels prefer) and
    ``compile`` (``torch.compile`` of the training forward pass) compute the same function;
    ``cuda_graph`` records the whole step once and replays it (``graphs.CapturedStep``; on a
    CPU it does nothing); ``bf16`` autocasts the forward pass and loss to bfloat16, which
    rounds differently and stays off until a measurement shows that it leaves the results
    alone. Evaluation, full gradients, noise and sharpness always use the plain fp32 network.
    """

    def __init__(
        self,
        precision: str = "fp32",
        channels_last: bool = False,
        compile: bool = False,
        cuda_graph: bool = False,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if compile and cuda_graph:  # torch.compile(mode="reduce-overhead") makes its own graphs
            raise ValueError("compile and cuda_graph: choose one")
        self.precision, self.channels_last, self.compile, self.cuda_graph = (
            precision,
            channels_last,
            compile,
            cuda_graph,
        )

    def prepare(self, model: nn.Module) -> nn.Module:
        """Put ``model`` in the chosen memory layout (in place); the module to call for training."""
        if self.channels_last:  # 4-D weights; a stacked network's follow their input's layout
            for p in model.parameters():
                if p.dim() == 4:
                    p.data = p.data.contiguous(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self, device: torch.device):
        # No cast cache: each weight is cast once per step anyway, and a CUDA graph must not
        # keep one.
        return torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16", cache_enabled=False
        )

    def capture(self, step, inputs: tuple[torch.Tensor, ...], state: list[torch.Tensor]):
        """The training step ``step(*inputs)`` as it will run: recorded as a CUDA graph when
        ``cuda_graph`` is set and the inputs live on a GPU, else ``step`` itself. ``state``:
        every tensor the step changes."""
        if self.cuda_graph and inputs[0].is_cuda:
            from .graphs import CapturedStep

            return CapturedStep(step, inputs, state)
        return step


def forward_flops(model: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """FLOPs of one image's forward pass through the convolutions and linear layers (two per
    multiply–add; BatchNorm, activations and pooling are left out, as is usual). A training
    step costs about three times this (the backward pass twice the forward)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )
            total += 2 * per_output * output.numel()
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features * output.shape[0]

    hooks = [
        m.register_forward_hook(count)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *image_shape))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return total
