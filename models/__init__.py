"""Networks, diffusion processes, measures and LightningModules: what is trained and how it samples.

The names configs use (`class_path: models.ImageDiffusion`, `models.SampleGridCallback`, ...) are re-exported
here from the subpackages, one layer each: networks, measures (layer 1), processes (2), training (3)."""

from .networks.graph_transformer import GraphTransformerConfig
from .networks.unet import UNetConfig
from .processes.gaussian_diffusion import GaussianDiffusion, NoiseSchedule
from .processes.graph_diffusion import GraphDiffusion
from .training.callbacks import SampleGridCallback
from .training.diagnostics import TrainingDiagnostics
from .training.graph_generation import GraphGeneration, GraphSamples
from .training.image_diffusion import ImageDiffusion, SampleResult
from .training.molecule_diffusion import MoleculeDiffusion, MoleculeSamples
from .training.optimization import OptimizerConfig
from .training.pipeline import export_pipeline, load_pipeline
from .training.predict import SampleWriter
from .training.quality import SampleQualityCallback

__all__ = ["GaussianDiffusion", "GraphDiffusion", "GraphGeneration", "GraphSamples", "GraphTransformerConfig", "ImageDiffusion", "MoleculeDiffusion",
           "MoleculeSamples", "NoiseSchedule", "OptimizerConfig", "SampleGridCallback", "SampleQualityCallback",
           "SampleResult", "SampleWriter", "TrainingDiagnostics", "UNetConfig", "export_pipeline", "load_pipeline"]
