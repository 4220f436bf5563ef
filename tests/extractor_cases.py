"""A tiny fixed feature extractor for FID / KID / IS tests: no Inception weights needed."""

import torch
from torch import nn


class TinyExtractor(nn.Module):
    """A fixed random conv net: logits for IS, pooled features for FID."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.head = nn.Linear(8, 5)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255
        return torch.relu(self.conv(x)).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
