"""Export to a diffusers pipeline folder and back: the same images as the workbench's own DDIM sampler."""

import json

import pytest
import torch
from diffusers import DDIMPipeline

from models import export_pipeline, load_pipeline
from qgfd_gen.attention import QGFDConfig, named_qgfd_layers
from sampling.commands.export import main as export_main
from qgfd_gen.errors import UsageError

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["sampling.commands.export"]


def workbench_images(model, use_ema: bool = True) -> torch.Tensor:
    return model.sample(3, sampler="ddim", steps=5, seed=7, batch_size=3, use_ema=use_ema).images


def pipeline_images(pipeline) -> torch.Tensor:
    out = pipeline(batch_size=3, generator=torch.Generator().manual_seed(7), num_inference_steps=5, output_type="np")
    return torch.from_numpy(out.images).permute(0, 3, 1, 2)  # NHWC numpy -> NCHW


def drift_raw_weights(model) -> None:
    """Move the raw weights away from the EMA, so that exporting the wrong ones shows."""
    with torch.no_grad():
        for parameter in model.unet.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))


def test_a_qgfd_model_round_trips_with_its_learned_alphas(tiny_image_model, tmp_path):
    model = tiny_image_model(timesteps=50, qgfd=QGFDConfig(alpha=0.5, iterations=2, alpha_mode="learnable"))
    with torch.no_grad():
        for index, layer in enumerate(named_qgfd_layers(model.ema.module).values()):
            layer.alpha.logit.fill_(0.3 * index - 0.4)  # learned alphas away from their start
    drift_raw_weights(model)
    export_pipeline(model, tmp_path / "pipe")
    settings = json.loads((tmp_path / "pipe" / "unet" / "config.json").read_text())["qgfd_gen"]
    assert settings["qgfd"]["alpha_mode"] == "learnable" and settings["weights"] == "ema"
    pipeline = load_pipeline(tmp_path / "pipe")
    alphas = [float(layer.alpha()) for layer in named_qgfd_layers(pipeline.unet).values()]
    expected = [float(layer.alpha()) for layer in named_qgfd_layers(model.ema.module).values()]
    assert alphas == pytest.approx(expected) and len(set(round(a, 4) for a in alphas)) > 1
    ours = workbench_images(model)
    assert torch.allclose(pipeline_images(pipeline), ours, atol=1e-5)
    assert not torch.allclose(workbench_images(model, use_ema=False), ours, atol=1e-3)  # the EMA was exported


def test_a_transformer_block_model_round_trips(tiny_image_model, tmp_path):
    model = tiny_image_model(timesteps=50, attention_block="transformer")
    export_pipeline(model, tmp_path / "pipe")
    assert torch.allclose(pipeline_images(load_pipeline(tmp_path / "pipe")), workbench_images(model), atol=1e-5)


def test_a_vanilla_export_loads_in_plain_diffusers(tiny_image_model, tmp_path):
    model = tiny_image_model(timesteps=50, attention="vanilla")
    export_pipeline(model, tmp_path / "pipe")
    plain = DDIMPipeline.from_pretrained(tmp_path / "pipe")  # no project code involved in building it
    assert type(plain.unet).__module__.startswith("diffusers")
    assert torch.allclose(pipeline_images(plain), workbench_images(model), atol=1e-5)


def test_export_refuses_what_it_cannot_write(tiny_image_model, molecule_checkpoint, tmp_path, capsys):
    model = tiny_image_model(timesteps=50)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not an empty folder"):
        export_pipeline(model, tmp_path / "taken")
    assert (tmp_path / "taken" / "file.txt").read_text() == "keep me"
    assert export_main(["--ckpt", str(molecule_checkpoint), "--out", str(tmp_path / "mol")]) == 2
    assert "no diffusers pipeline form" in capsys.readouterr().err and not (tmp_path / "mol").exists()


def test_the_command_exports_a_checkpoint(image_checkpoint, tmp_path, capsys):
    from models.training.loading import load_model

    assert export_main(["--ckpt", str(image_checkpoint), "--out", str(tmp_path / "pipe")]) == 0
    assert "models.load_pipeline" in capsys.readouterr().out
    assert {p.name for p in (tmp_path / "pipe").iterdir()} >= {"model_index.json", "unet", "scheduler"}
    model = load_model(image_checkpoint, "images")
    assert torch.allclose(pipeline_images(load_pipeline(tmp_path / "pipe")), workbench_images(model), atol=1e-5)
