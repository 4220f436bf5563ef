"""Typed settings of the evaluations, built by the commands from their options (argument parsing stays in
`sampling.commands`): what a sweep samples, and what each kind of evaluation scores."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class SweepSettings:
    """The sampler settings of one results folder. `exits` are per-sample early-exit thresholds in the model's
    own unit: 8-bit levels an image may still move (`exit_levels`), or the share of the chain's timesteps a
    molecule must stay settled (`exit_share`); results rows keep them under their historical key `exit_tol`."""

    checkpoint: str
    out: Optional[str]  # the results folder; None: named after the checkpoint
    samplers: tuple[str, ...]
    steps: tuple[int, ...]
    num_samples: int = 1000
    seed: int = 0
    batch_size: int = 256
    qgfd_tol: tuple[float, ...] = ()
    qgfd_max_iterations: Optional[int] = None
    exits: tuple[float, ...] = ()
    rtol: tuple[float, ...] = ()  # adaptive sampler
    atol: tuple[float, ...] = ()
    end_log_snr: Optional[float] = None
    data_dir: Optional[str] = None  # where the checkpoint's data lives, if not where it was
    device: str = "cpu"
    devices: int = 1  # processes per node
    num_nodes: int = 1

    @property
    def processes(self) -> int:
        return self.devices * self.num_nodes


@dataclass
class ImageEvaluation:
    """`qgfd-eval images`: FID / KID / IS on InceptionV3 or a given extractor, and NLL on held-out images."""

    sweep: SweepSettings
    metrics: tuple[str, ...] = ("fid", "is", "nll")
    eta: float = 0.0  # DDIM's noise
    inception_weights: Optional[str] = None
    feature_extractor: Optional[str] = None
    nll_images: int = 256
    nll_timesteps: Optional[int] = None
    reference_images: Optional[int] = None  # training images in the FID / KID reference; None: as many as samples


@dataclass
class ImageFileScoring:
    """`qgfd-eval images --samples DIR|NPZ --reference DIR|NPZ|STATS`: score images made elsewhere."""

    samples: str
    reference: str
    json: Optional[str]  # where the scores go; None: printed only
    metrics: tuple[str, ...] = ("fid", "kid")
    inception_weights: Optional[str] = None
    feature_extractor: Optional[str] = None
    batch_size: int = 100
    save_reference: Optional[str] = None  # also write the reference's statistics here


@dataclass
class MoleculeEvaluation:
    """`qgfd-eval molecules` from a checkpoint: validity, uniqueness, novelty, FCD, fragments, NSPDK."""

    sweep: SweepSettings
    fcd: bool = True
    nspdk: bool = True
    moses: bool = False  # MOSES's scorecard (sampling.moses_scoring): Filters, IntDiv, unique@k, SNN/Frag/Scaf, W1


@dataclass
class SmilesFileScoring:
    """`qgfd-eval molecules --samples FILE`: score molecules made elsewhere."""

    samples: str
    train: Optional[str]
    test: Optional[str]
    json: Optional[str]
    fcd: bool = True
    nspdk: bool = True
    moses: bool = False
    test_sf: Optional[str] = None  # MOSES's scaffold test set (TestSF), for --moses


@dataclass
class GraphEvaluation:
    """`qgfd-eval graphs` from a checkpoint: V.U.N. and the MMDs (and their ratios) against sampler steps."""

    sweep: SweepSettings
    kernel: str = "tv"


@dataclass
class GraphFileScoring:
    """`qgfd-eval graphs --samples FILE`: graphs made elsewhere, scored against a benchmark's own graphs."""

    samples: str
    benchmark: str
    json: Optional[str]
    num_nodes: int = 64
    seed: int = 0
    kernel: str = "tv"
