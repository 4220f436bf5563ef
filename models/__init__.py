"""Networks, diffusion processes, measures and LightningModules: what is trained and how it samples.

The names configs use (`class_path: models.ImageDiffusion`, `models.SampleGridCallback`, ...) are re-exported
here from the subpackages, one layer each: networks, measures (layer 1), processes (2), training (3). They load
on first use (`qgfd_gen.lazy`)."""

from qgfd_gen.lazy import lazy_exports

_EXPORTS = {
    "GraphTransformerConfig": ".networks.graph_transformer",
    "UNetConfig": ".networks.unet",
    "GaussianDiffusion": ".processes.gaussian_diffusion",
    "NoiseSchedule": ".processes.gaussian_diffusion",
    "GraphDiffusion": ".processes.graph_diffusion",
    "SampleGridCallback": ".training.callbacks",
    "CollapseMonitor": ".training.collapse",
    "TrainingDiagnostics": ".training.diagnostics",
    "GraphGeneration": ".training.graph_generation",
    "GraphSamples": ".training.graph_generation",
    "ImageDiffusion": ".training.image_diffusion",
    "SampleResult": ".training.image_diffusion",
    "MoleculeDiffusion": ".training.molecule_diffusion",
    "MoleculeSamples": ".training.molecule_diffusion",
    "OptimizerConfig": ".training.optimization",
    "export_pipeline": ".training.pipeline",
    "load_pipeline": ".training.pipeline",
    "SampleWriter": ".training.predict",
    "SampleQualityCallback": ".training.quality",
    "StabilityMonitor": ".training.stability",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
