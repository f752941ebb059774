"""The project's own reference networks: MobileNetV1 and ShuffleNet V1 (plain PyTorch, random init).

torchvision ships neither, so these are written from the papers (MobileNetV1: Howard et al. 2017,
Table 1; ShuffleNet V1: Zhang et al. 2017, Table 1). They are ordinary ``nn.Module`` trees with
unfused convs and BatchNorms, so ``fastconv.optimize`` has something to convert and benchmarks have
an unfused baseline. Nothing is downloaded; weights are randomly initialised.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["DepthwiseSeparable", "MobileNetV1", "mobilenet_v1", "ShuffleV1Block", "ShuffleNetV1",
           "shufflenet_v1", "SHUFFLENET_V1_CHANNELS"]


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------
# MobileNetV1
# ---------------------------------------------------------------------------------------------

class DepthwiseSeparable(nn.Module):
    """dw kxk (stride) -> BN -> ReLU -> pw 1x1 -> BN -> ReLU. x: (N, C, H, W) -> (N, K, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernel_size: int = 3):
        super().__init__()
        self.dw = nn.Conv2d(in_channels, in_channels, kernel_size, stride, kernel_size // 2,
                            groups=in_channels, bias=False)
        self.dw_bn = nn.BatchNorm2d(in_channels)
        self.dw_act = nn.ReLU(inplace=True)
        self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pw_bn = nn.BatchNorm2d(out_channels)
        self.pw_act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        x = self.dw_act(self.dw_bn(self.dw(x)))
        return self.pw_act(self.pw_bn(self.pw(x)))


# (out_channels, stride) of the 13 depthwise-separable blocks, before the width multiplier
_MOBILENET_V1_BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]


def _scaled(c: int, width_mult: float) -> int:
    # Multiples of 8 keep the channel counts friendly to vectorised kernels at any multiplier.
    return max(8, int(c * width_mult + 4) // 8 * 8)


class MobileNetV1(nn.Module):
    """x: (N, 3, H, W) -> logits (N, num_classes)."""

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000):
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        stem = _scaled(32, width_mult)
        layers: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))]
        c = stem
        for out, stride in _MOBILENET_V1_BLOCKS:
            out = _scaled(out, width_mult)
            layers.append(DepthwiseSeparable(c, out, stride))
            c = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)
        self.last_channels = c
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v1(width_mult: float = 1.0, num_classes: int = 1000) -> MobileNetV1:
    """MobileNetV1 (conv3x3 s2, 13 depthwise-separable blocks, global avgpool, fc), random weights."""
    return MobileNetV1(width_mult, num_classes)


# ---------------------------------------------------------------------------------------------
# ShuffleNet V1
# ---------------------------------------------------------------------------------------------

# groups -> output channels of stages 2, 3, 4 (paper, Table 1, complexity 1x)
SHUFFLENET_V1_CHANNELS = {1: (144, 288, 576), 2: (200, 400, 800), 3: (240, 480, 960),
                          4: (272, 544, 1088), 8: (384, 768, 1536)}
_SHUFFLENET_V1_REPEATS = (4, 8, 4)
_SHUFFLENET_V1_STEM = 24


class ShuffleV1Block(nn.Module):
    """ShuffleNet V1 unit. x: (N, C, H, W) -> (N, C, H, W) at stride 1, (N, out_channels, H/2, W/2)
    at stride 2 (the conv branch makes ``out_channels - C`` channels, concatenated after avg-pooled x).
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, *, groups: int,
                 stride: int, first_groups: int | None = None):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 unit adds its input: in_channels must equal out_channels")
        g1 = groups if first_groups is None else first_groups
        self.stride = stride
        self.groups = groups
        self.first_groups = g1
        self.gconv1 = nn.Conv2d(in_channels, mid_channels, 1, groups=g1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid_channels)
        self.dw = nn.Conv2d(mid_channels, mid_channels, 3, stride, 1, groups=mid_channels, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_channels)
        self.gconv2 = nn.Conv2d(mid_channels, branch_out, 1, groups=groups, bias=False)
        self.bn3 = nn.BatchNorm2d(branch_out)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.gconv1(x)))
        y = F.channel_shuffle(y, self.groups) if self.groups > 1 else y
        y = self.bn3(self.gconv2(self.bn2(self.dw(y))))
        if self.stride == 1:
            return F.relu(x + y)
        return F.relu(torch.cat([F.avg_pool2d(x, 3, 2, 1), y], 1))

    def extra_repr(self) -> str:
        return f"groups={self.groups}, first_groups={self.first_groups}, stride={self.stride}"


class ShuffleNetV1(nn.Module):
    """x: (N, 3, H, W) -> logits (N, num_classes)."""

    def __init__(self, groups: int = 3, width_mult: float = 1.0, num_classes: int = 1000):
        super().__init__()
        if groups not in SHUFFLENET_V1_CHANNELS:
            raise ValueError(f"groups must be one of {sorted(SHUFFLENET_V1_CHANNELS)}, got {groups}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        self.groups = groups
        # Multiples of 4*groups keep the bottleneck (out/4) and every branch width divisible by groups.
        unit = 4 * groups
        stage_out = [max(unit, int(round(c * width_mult / unit)) * unit)
                     for c in SHUFFLENET_V1_CHANNELS[groups]]
        stem = _SHUFFLENET_V1_STEM
        self.conv1 = nn.Sequential(nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem),
                                   nn.ReLU(inplace=True))
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c = stem
        stages = []
        for si, (out, repeats) in enumerate(zip(stage_out, _SHUFFLENET_V1_REPEATS)):
            mid = out // 4
            units = []
            for i in range(repeats):
                stride = 2 if i == 0 else 1
                # The paper does not group the first pointwise conv of stage 2: its input has only 24 channels.
                first = 1 if (si == 0 and i == 0) else None
                units.append(ShuffleV1Block(c, out, mid, groups=groups, stride=stride, first_groups=first))
                c = out
            stages.append(nn.Sequential(*units))
        self.stage2, self.stage3, self.stage4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)
        self.last_channels = c
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.stage4(self.stage3(self.stage2(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def shufflenet_v1(groups: int = 3, width_mult: float = 1.0, num_classes: int = 1000) -> ShuffleNetV1:
    """ShuffleNet V1 with ``groups`` in {1, 2, 3, 4, 8} (stage widths from the paper), random weights."""
    return ShuffleNetV1(groups, width_mult, num_classes)
