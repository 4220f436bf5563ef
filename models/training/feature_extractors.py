"""Feature extractors trained here for FID / IS where InceptionV3 is out of reach or out of place: the digits
classifier (`models.networks.digits_classifier`), trained on the digits training split only."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models.networks.digits_classifier import DigitsClassifier


def train_digits_classifier(epochs: int = 30, seed: int = 0) -> tuple[DigitsClassifier, float]:
    """Trains the digits classifier on the digits training split.

    Args:
        epochs: passes over the training split.
        seed: torch's seed for the weights and the batch order.

    Returns:
        The model (in eval mode) and its accuracy on the held-out split.
    """
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
