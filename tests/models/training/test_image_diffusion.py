"""The image LightningModule: one training step, the EMA, a reproducible validation loss, grouped configs."""

import torch

from models import ImageDiffusion


def test_one_training_step_runs_and_updates_the_ema(tiny_image_model):
    model = tiny_image_model()
    before = [p.clone() for p in model.ema.module.parameters()]
    optimizer = model.configure_optimizers()["optimizer"]
    batch = torch.rand(4, 1, 8, 8) * 2 - 1
    loss = model.training_step(batch, 0)
    loss.backward()
    model.optimizer_step(0, 0, optimizer)  # Lightning's hook: the optimiser step, then the EMA's update
    assert torch.isfinite(loss) and int(model.ema.n_averaged) == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.ema.module.parameters()))
    val1 = model.validation_step(batch, 0)
    assert torch.equal(val1, model.validation_step(batch, 0))  # fixed timesteps and noise


def test_hyperparameters_are_plain_mappings_and_defaults_are_not_shared(tiny_image_model):
    model = tiny_image_model()
    assert isinstance(model.hparams["unet"], dict) and model.hparams["unet"]["sample_size"] == 8
    assert isinstance(model.hparams["qgfd"], dict) and model.hparams["qgfd"]["iterations"] == 4
    first, second = ImageDiffusion(unet={"sample_size": 8, **_small()}), ImageDiffusion(unet=_small())
    assert first.qgfd_config is not second.qgfd_config and first.unet_config is not second.unet_config


def _small() -> dict:
    return dict(in_channels=1, block_out_channels=[8], down_block_types=["AttnDownBlock2D"],
                up_block_types=["AttnUpBlock2D"], layers_per_block=1, attention_head_dim=8, norm_num_groups=4)
