"""Feature extractors for FID / IS where InceptionV3 is out of reach or out of place.

InceptionV3 features mean little on 16x16 handwritten digits, and its weights cannot be fetched
offline. This trains a small digits classifier (on the digits training split only) and saves it as
TorchScript for `qgfd-eval images --feature-extractor FILE`: FID then is the Frechet distance in the
classifier's penultimate features and IS uses its 10-class posteriors. The numbers compare runs of
this workbench with each other, not with published Inception FIDs.

    qgfd-features --out digits-classifier.pt
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qgfd_gen.errors import command
from qgfd_gen.io import atomic_path, check_outputs

from .options import positive_int


class DigitsClassifier(nn.Module):
    """Images in [0, 1] (float) or 0..255 (uint8), 1 or 3 channels, 16x16 -> 10 logits; `features` -> 64."""

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


def train_digits_classifier(epochs: int = 30, seed: int = 0) -> tuple[DigitsClassifier, float]:
    """Train on the digits training split; returns the model and its held-out accuracy."""
    from datamodules import DigitsDataModule

    torch.manual_seed(seed)
    data = DigitsDataModule(image_size=16, batch_size=64)
    data.setup()
    model = DigitsClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for images, labels in data.train_dataloader():
            loss = F.cross_entropy(model((images + 1) / 2), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in data.val_dataloader():
            correct += int((model((images + 1) / 2).argmax(-1) == labels).sum())
            total += len(labels)
    return model, correct / total


@command
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Train the digits feature extractor for offline FID / IS.")
    parser.add_argument("--out", default="digits-classifier.pt")
    parser.add_argument("--epochs", type=positive_int, default=30)
    args = parser.parse_args(argv)
    check_outputs({"--out": args.out})
    model, accuracy = train_digits_classifier(args.epochs)
    with atomic_path(args.out) as tmp:
        torch.jit.script(model).save(str(tmp))
    print(f"wrote {args.out}: held-out accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
