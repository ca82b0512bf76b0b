"""The network: a small from-scratch CNN with an image-level head and a per-class defect map."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# The name is stored in each artifact; a changed layout needs a new name, not an edited entry.
ARCHITECTURES = {"loupe-fpn-v1": (16, 32, 64, 96)}
DEFAULT_ARCHITECTURE = "loupe-fpn-v1"
OUTPUT_STRIDE = 4
INPUT_MULTIPLE = 16  # the deepest stage downsamples 16x and is upsampled back exactly


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DefectNet(nn.Module):
    """Returns (image logit [N], defect map logits [N, classes, H/4, W/4])."""

    def __init__(self, num_classes: int, widths: tuple[int, int, int, int]) -> None:
        super().__init__()
        w2, w4, w8, w16 = widths
        self.stem = _conv(3, w2, 2)
        self.stage4 = nn.Sequential(_conv(w2, w4, 2), _conv(w4, w4))
        self.stage8 = nn.Sequential(_conv(w4, w8, 2), _conv(w8, w8))
        self.stage16 = nn.Sequential(_conv(w8, w16, 2), _conv(w16, w16))
        # top-down path: coarse context (is this a lens or a spot?) meets fine stride-4 detail
        self.lateral8 = nn.Conv2d(w16, w8, 1)
        self.fuse8 = _conv(w8, w8)
        self.lateral4 = nn.Conv2d(w8, w4, 1)
        self.fuse4 = _conv(w4, w4)
        self.map_head = nn.Conv2d(w4, num_classes, 1)
        self.image_head = nn.Linear(2 * w16 + num_classes, 1)
        # start the map at the rarity of defect cells (~2%); from 0.5 the first epochs go
        # to learning "mostly background" and the image head idles at chance meanwhile
        nn.init.constant_(self.map_head.bias, -4.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image_logits, maps, _ = self.forward_with_features(x)
        return image_logits, maps

    def forward_with_features(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """forward's two outputs plus the pooled features the image head reads [N, 2*w16+C]:
        the embedding active learning measures novelty and diversity in, at no extra pass."""
        f4 = self.stage4(self.stem(x))
        f8 = self.stage8(f4)
        f16 = self.stage16(f8)
        u8 = self.fuse8(f8 + F.interpolate(self.lateral8(f16), scale_factor=2.0))
        u4 = self.fuse4(f4 + F.interpolate(self.lateral4(u8), scale_factor=2.0))
        maps = self.map_head(u4)
        pooled = torch.cat([f16.mean((2, 3)), f16.amax((2, 3)), maps.amax((2, 3))], dim=1)
        return self.image_head(pooled).squeeze(1), maps, pooled


def build_model(architecture: str, num_classes: int) -> DefectNet:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; known: {sorted(ARCHITECTURES)}")
    if num_classes < 1:
        raise ValueError("a model needs at least one defect class")
    return DefectNet(num_classes, ARCHITECTURES[architecture])


def with_more_classes(network: DefectNet, extra: int) -> DefectNet:
    """A copy of `network` with `extra` more defect-map channels, appended after the old ones.

    The old channels and the image logit are unchanged: the new channels start at the prior
    (zero weights, the init's bias, so "absent" everywhere), and so do the image head's
    weights for them. So a line that gains a defect
    class keeps what its model knows and fine-tunes, instead of training from scratch.
    """
    if extra < 1:
        raise ValueError("extra must be at least 1")
    old = network.map_head.out_channels
    widths = (
        network.stem[0].out_channels,
        network.stage4[0][0].out_channels,
        network.stage8[0][0].out_channels,
        network.stage16[0][0].out_channels,
    )
    grown = DefectNet(old + extra, widths).to(network.map_head.weight.device)
    state = {
        k: v
        for k, v in network.state_dict().items()
        if not k.startswith(("map_head.", "image_head."))
    }
    missing = grown.load_state_dict(state, strict=False).missing_keys
    if any(not k.startswith(("map_head.", "image_head.")) for k in missing):
        raise ValueError(f"network layout differs from {type(grown).__name__}: {missing}")
    pooled = 2 * widths[3]
    with torch.no_grad():
        grown.map_head.weight.zero_()
        grown.map_head.weight[:old] = network.map_head.weight
        grown.map_head.bias[:old] = network.map_head.bias
        grown.image_head.weight.zero_()
        grown.image_head.weight[:, : pooled + old] = network.image_head.weight
        grown.image_head.bias.copy_(network.image_head.bias)
    return grown
