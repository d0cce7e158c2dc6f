"""ResNet-34 with a frozen, autograd-free trunk and a small MLP head."""

from __future__ import annotations

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse as fuse_conv_bn
from torchvision.models import ResNet34_Weights, resnet34

from trainlib.errors import InputError

ARCHITECTURE = "resnet34"
PRETRAINED_WEIGHTS = ResNet34_Weights.IMAGENET1K_V1

#: Under CPU bf16 autocast, layer4 + head run in bf16 only when layer4's input map is at least
#: this wide (64px inputs and up). Measured on an AVX512-BF16 CPU: at 128px (8x8 map) bf16
#: layer4 + head made the step 1.63x faster than fp32 vs 1.33x with the trunk alone in bf16; at
#: 32px (2x2 map) the per-step weight casts outweigh the tiny convolutions (1.0x vs 1.2x).
CPU_BF16_LAYER4_MIN_SIDE = 4


def load_imagenet_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet weights (from TORCH_HOME's cache or downloaded)."""
    try:
        return PRETRAINED_WEIGHTS.get_state_dict(progress=False)
    except (
        Exception
    ) as e:  # URLError, HTTPError, timeouts, a truncated file: all the same to the user
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(
            f"could not fetch pretrained weights {PRETRAINED_WEIGHTS} from {PRETRAINED_WEIGHTS.url} "
            f"({type(e).__name__}: {reason}); run with --pretrained false or pre-fill TORCH_HOME"
        ) from None


class ResNet34Classifier(nn.Module):
    """Stem + layer1-3 (frozen: eval mode, no autograd) -> layer4 -> pool -> MLP head.

    With ``freeze_backbone`` the trunk runs under ``torch.no_grad``: it builds no graph and
    costs no backward pass, and its BatchNorm statistics stay those it was loaded with.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        hidden_units: int = 512,
        dropout: float = 0.2,
        freeze_backbone: bool = True,
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        net = resnet34(weights=None)
        if state_dict is not None:
            net.load_state_dict(state_dict)
        self.trunk: nn.Module = nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3
        )
        self.layer4 = net.layer4
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Linear(512, hidden_units),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_units, num_classes),
        )
        self.freeze_backbone = freeze_backbone
        self.trunk_fused = False
        if freeze_backbone:
            self.trunk.requires_grad_(False)
            self.trunk.eval()

    def train(self, mode: bool = True) -> ResNet34Classifier:
        super().train(mode)
        if self.freeze_backbone:
            self.trunk.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.freeze_backbone:
            with torch.no_grad():
                x = self.trunk(x)
        else:
            x = self.trunk(x)
        # Only a bf16 map from CPU autocast can take this branch; fp32 runs (export, serving,
        # GPU) never do, so the traced artifact has no trace of it.
        if (
            x.dtype == torch.bfloat16
            and x.device.type == "cpu"
            and x.shape[-1] < CPU_BF16_LAYER4_MIN_SIDE
        ):
            with torch.autocast("cpu", enabled=False):
                return self._tail(x.float())
        return self._tail(x)

    def _tail(self, x: torch.Tensor) -> torch.Tensor:
        """The trained part: layer4 -> pool -> head."""
        x = self.pool(self.layer4(x))
        return self.head(torch.flatten(x, 1))

    def fuse_frozen_trunk(self) -> None:
        """Fold each eval-mode BatchNorm of the frozen trunk into the conv before it.

        The frozen trunk is a pure inference subgraph, so ``bn(conv(x))`` equals one conv with
        rescaled weights and a bias (same outputs up to float rounding): a whole pass over every
        trunk activation less per step. One-way: the trunk becomes an fx GraphModule without
        BatchNorm modules, so call it after the weights are loaded. No-op when not frozen.
        """
        if not self.freeze_backbone or self.trunk_fused:
            return
        with torch.no_grad():
            self.trunk = fuse_conv_bn(self.trunk.eval())
        self.trunk.requires_grad_(False)
        self.trunk.eval()
        self.trunk_fused = True

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def build_model(
    num_classes: int, *, pretrained: bool, hidden_units: int, dropout: float, freeze_backbone: bool
) -> ResNet34Classifier:
    state_dict = load_imagenet_state_dict() if pretrained else None
    return ResNet34Classifier(
        num_classes,
        hidden_units=hidden_units,
        dropout=dropout,
        freeze_backbone=freeze_backbone,
        state_dict=state_dict,
    )
