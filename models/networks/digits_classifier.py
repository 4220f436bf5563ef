"""A small classifier of 16x16 handwritten digits, the feature extractor for FID / IS on the offline digits set.

InceptionV3 features mean little on 16x16 digits; FID in this classifier's penultimate features, and IS on its
10-class posteriors, compare runs of this workbench with each other, not with published Inception FIDs. It is
saved as TorchScript (`qgfd-features`), so a saved file loads without this class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class DigitsClassifier(nn.Module):
    """Images in [0, 1] (float) or 0..255 (uint8), 1 or 3 channels, 16x16 -> 10 logits; `features` -> 64.

    Example:
        >>> DigitsClassifier().features(torch.zeros(2, 1, 16, 16)).shape
        torch.Size([2, 64])
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.head = nn.Linear(64, 10)

    @torch.jit.export
    def features(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x.mean(1, keepdim=True) * 2 - 1  # grey, in [-1, 1] like the training data
        if x.shape[-1] != 16:
            x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        return x.mean((2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
