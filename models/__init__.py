"""LightningModules: what is trained."""

from .callbacks import SampleGridCallback
from .image_diffusion import ImageDiffusion, SampleResult
from .molecule_diffusion import MoleculeDiffusion, MoleculeSamples

__all__ = ["ImageDiffusion", "MoleculeDiffusion", "MoleculeSamples", "SampleGridCallback", "SampleResult"]
