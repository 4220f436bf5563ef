"""Networks, diffusion processes and LightningModules: what is trained and how it samples."""

from .callbacks import SampleGridCallback
from .diagnostics import TrainingDiagnostics
from .gaussian_diffusion import GaussianDiffusion, NoiseSchedule
from .graph_diffusion import GraphDiffusion
from .graph_transformer import GraphTransformerConfig
from .image_diffusion import ImageDiffusion, SampleResult
from .molecule_diffusion import MoleculeDiffusion, MoleculeSamples
from .pipeline import export_pipeline, load_pipeline
from .predict import SampleWriter
from .quality import SampleQualityCallback
from .training import OptimizerConfig
from .unet import UNetConfig

__all__ = ["GaussianDiffusion", "GraphDiffusion", "GraphTransformerConfig", "ImageDiffusion", "MoleculeDiffusion",
           "MoleculeSamples", "NoiseSchedule", "OptimizerConfig", "SampleGridCallback", "SampleQualityCallback", "SampleResult", "SampleWriter",
           "TrainingDiagnostics", "UNetConfig", "export_pipeline", "load_pipeline"]
