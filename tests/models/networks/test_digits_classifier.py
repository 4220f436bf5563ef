"""The digits classifier (the feature extractor for FID on digits): its shapes, its TorchScript form, and its
training through `qgfd-features`."""

from __future__ import annotations

import torch

from models.networks.digits_classifier import DigitsClassifier
from sampling.commands.feature_extractors import main

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["models.training.feature_extractors", "sampling.commands.feature_extractors"]


def test_features_and_logits_for_float_and_uint8_images_of_any_size():
    model = DigitsClassifier().eval()
    floats = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert model.features(floats).shape == (3, 64) and model(floats).shape == (3, 10)
    as_uint8 = (floats * 255).round().to(torch.uint8)
    torch.testing.assert_close(model.features(as_uint8), model.features(as_uint8.float() / 255))


def test_qgfd_features_trains_and_saves_a_torchscript_that_loads_without_the_class(tmp_path, capsys):
    out = tmp_path / "digits-classifier.pt"
    assert main(["--out", str(out), "--epochs", "5"]) == 0
    accuracy = float(capsys.readouterr().out.rsplit("accuracy", 1)[1])
    assert accuracy > 0.5  # five epochs on the digits training split: far better than chance (0.1)
    loaded = torch.jit.load(str(out))
    images = torch.rand(2, 1, 16, 16)
    assert loaded.features(images).shape == (2, 64) and loaded(images).shape == (2, 10)
