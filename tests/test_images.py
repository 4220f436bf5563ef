"""Image diffusion: configs, the U-Net with QGFD, the `lightning` command, resuming, sampling, data."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules import CelebADataModule, CIFAR10DataModule, DataUnavailableError, DigitsDataModule, ImageFolderDataModule
from models import ImageDiffusion
from qgfd_gen.attention import QGFDConfig
from qgfd_gen.cli import main, run_cli

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
IMAGE_CONFIGS = ["digits", "cifar", "cifar-vanilla", "cifar-cpu", "celeba"]


def tiny_model(**kwargs) -> ImageDiffusion:
    torch.manual_seed(0)
    defaults = dict(
        sample_size=8, in_channels=1, block_out_channels=[16, 32], down_block_types=["AttnDownBlock2D", "DownBlock2D"],
        up_block_types=["UpBlock2D", "AttnUpBlock2D"], layers_per_block=1, attention_head_dim=8, norm_num_groups=8,
        dropout=0.0, num_train_timesteps=100, warmup_steps=1, ema_decay=0.9,
    )
    defaults.update(kwargs)
    return ImageDiffusion(**defaults)


@pytest.mark.parametrize("name", IMAGE_CONFIGS)
def test_config_parses_and_builds(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = run_cli(["-c", str(CONFIGS / f"{name}.yaml")], run=False)
    assert isinstance(cli.model, ImageDiffusion)
    expected = "vanilla" if name == "cifar-vanilla" else "qgfd"
    assert cli.model.hparams.attention == expected
    if name.startswith("cifar") and name != "cifar-cpu":
        params = sum(p.numel() for p in cli.model.unet.parameters())
        assert abs(params - 35.7e6) < 0.1e6, params


def test_qgfd_with_alpha_zero_equals_vanilla_on_same_weights():
    vanilla = tiny_model(attention="vanilla").eval()
    qgfd = tiny_model(attention="qgfd", qgfd=QGFDConfig(alpha=0.0, steps=3)).eval()
    qgfd.load_state_dict(vanilla.state_dict())
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([0, 50, 99])
    with torch.no_grad():
        assert (vanilla(x, t) - qgfd(x, t)).abs().max() < 1e-5


def test_transformer_blocks_take_the_qgfd_processor():
    from models.unet import SpatialTransformer
    from qgfd_gen.processor import QGFDAttnProcessor

    vanilla = tiny_model(attention="vanilla", attention_block="transformer").eval()
    blocks = [m for m in vanilla.unet.modules() if isinstance(m, SpatialTransformer)]
    assert len(blocks) == 4  # down, middle, 2 x up (up blocks have layers_per_block + 1)
    qgfd0 = tiny_model(attention="qgfd", attention_block="transformer", qgfd=QGFDConfig(alpha=0.0, steps=3)).eval()
    qgfd = tiny_model(attention="qgfd", attention_block="transformer", qgfd=QGFDConfig(alpha=0.7, steps=3)).eval()
    qgfd0.load_state_dict(vanilla.state_dict())
    qgfd.load_state_dict(vanilla.state_dict())
    assert all(isinstance(b.block.attn1.processor, QGFDAttnProcessor) for b in qgfd.unet.modules() if isinstance(b, SpatialTransformer))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 70])
    with torch.no_grad():
        assert (vanilla(x, t) - qgfd0(x, t)).abs().max() < 1e-5
        assert (vanilla(x, t) - qgfd(x, t)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="attention_block='mlp'"):
        tiny_model(attention_block="mlp")


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++"])
def test_sampling_shape_range_and_seed(sampler):
    model = tiny_model()
    steps = 100 if sampler == "ddpm" else 5
    a = model.sample(5, sampler=sampler, steps=steps, seed=3, batch_size=2)
    b = model.sample(5, sampler=sampler, steps=steps, seed=3, batch_size=5)
    c = model.sample(5, sampler=sampler, steps=steps, seed=4, batch_size=5)
    assert a.images.shape == (5, 1, 8, 8)
    assert a.images.min() >= 0 and a.images.max() <= 1
    assert a.network_evaluations == steps
    assert a.qgfd_iterations == 4.0
    if sampler != "ddpm":  # deterministic samplers: batching must not change a single pixel's noise
        assert torch.allclose(a.images, b.images, atol=1e-5)
    assert torch.equal(b.images, model.sample(5, sampler=sampler, steps=steps, seed=3, batch_size=5).images)
    assert not torch.allclose(b.images, c.images)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "ddpm"])
def test_early_exit_lets_settled_samples_leave_the_batch(sampler):
    model = tiny_model()
    full = model.sample(6, sampler=sampler, steps=20, seed=1, batch_size=6)
    early = model.sample(6, sampler=sampler, steps=20, seed=1, batch_size=6, exit_tol=1.5)
    assert full.exited_early == 0 and full.network_evaluations == 20
    assert early.exited_early > 0 and early.network_evaluations < 20
    assert early.images.shape == full.images.shape
    assert early.images.min() >= 0 and early.images.max() <= 1


def test_sampling_rejects_bad_arguments():
    model = tiny_model()
    with pytest.raises(ValueError, match="sampler='euler'"):
        model.sample(2, sampler="euler")
    with pytest.raises(ValueError, match="steps=0"):
        model.sample(2, steps=0)
    with pytest.raises(ValueError, match="steps=500"):
        model.sample(2, steps=500)
    with pytest.raises(ValueError, match="exit_tol=0"):
        model.sample(2, exit_tol=0)


def test_one_training_step_lowers_nothing_but_runs_and_updates_ema():
    model = tiny_model()
    before = [p.clone() for p in model.ema.module.parameters()]
    optimizer = model.configure_optimizers()["optimizer"]
    batch = torch.rand(4, 1, 8, 8) * 2 - 1
    loss = model.training_step(batch, 0)
    loss.backward()
    optimizer.step()
    model.on_train_batch_end(None, batch, 0)
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.ema.module.parameters()))
    val1 = model.validation_step(batch, 0)
    assert torch.equal(val1, model.validation_step(batch, 0))  # fixed timesteps and noise


def _fit(tmp_path, config, *extra):
    return main(["fit", "-c", str(CONFIGS / config), "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", *extra])


def test_lightning_fit_fast_dev_run_on_digits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _fit(tmp_path, "digits.yaml", "--trainer.fast_dev_run", "2") == 0


def test_lightning_fit_on_image_folder_and_resume(tmp_path, monkeypatch):
    """Flat folder of PNGs -> 2 steps -> checkpoint; resume with --ckpt_path last continues to step 4."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    ckpt_dir = tmp_path / "ckpts"
    callbacks = json.dumps([{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                             "init_args": {"dirpath": str(ckpt_dir), "save_last": True}}])
    common = ["--data.init_args.data_dir", str(folder), "--data.init_args.batch_size", "4",
              "--data.init_args.num_workers", "0", "--data.init_args.val_size", "4",
              "--trainer.callbacks", callbacks, "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1",
              "--trainer.limit_train_batches", "2", "--trainer.val_check_interval", "null"]
    assert _fit(tmp_path, "cifar-cpu.yaml", *common, "--trainer.max_steps", "2") == 0
    first = torch.load(ckpt_dir / "last.ckpt", weights_only=False)
    assert first["global_step"] == 2
    assert _fit(tmp_path, "cifar-cpu.yaml", *common, "--trainer.max_steps", "4", "--trainer.max_epochs", "2",
                "--ckpt_path", "last") == 0
    second = torch.load(ckpt_dir / "last.ckpt", weights_only=False)
    assert second["global_step"] == 4
    assert second["epoch"] == 1
    assert int(second["state_dict"]["ema.n_averaged"]) == 4  # the EMA continued too
    assert "optimizer_states" in second and second["optimizer_states"][0]["state"]
    from models.checkpointing import datamodule_from_checkpoint

    rebuilt = datamodule_from_checkpoint(second)  # what samplers and evaluators use to find the data again
    assert isinstance(rebuilt, ImageFolderDataModule) and str(rebuilt.data_dir) == str(folder)
    from sampling.sample import main as sample_main

    assert sample_main(["images", "--ckpt", str(ckpt_dir / "last.ckpt"), "--num", "2", "--steps", "2",
                        "--out", str(tmp_path / "grid.png")]) == 0  # a checkpoint written by the CLI samples


def test_digits_data_is_offline_and_in_range():
    data = DigitsDataModule(image_size=16)
    data.setup()
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (64, 1, 16, 16)
    assert images.min() >= -1 and images.max() <= 1 and images.std() > 0.3
    assert len(data.train_set) + len(data.val_set) == 1797


def test_image_folder_with_class_subfolders(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (50, 30), (i * 40, 100, 200)).save(tmp_path / cls / f"{i}.jpg")
    data = ImageFolderDataModule(str(tmp_path), image_size=16, batch_size=2, num_workers=0, val_size=1)
    data.setup()
    assert len(data.train_set) == 5 and len(data.val_set) == 1
    batch = next(iter(data.train_dataloader()))
    assert batch.shape == (2, 3, 16, 16) and batch.min() >= -1 and batch.max() <= 1


def test_missing_data_fails_plainly(tmp_path, monkeypatch, capsys):
    with pytest.raises(DataUnavailableError, match="cifar-10-python.tar.gz"):
        CIFAR10DataModule(str(tmp_path), download=False).prepare_data()
    with pytest.raises(DataUnavailableError, match="img_align_celeba"):
        CelebADataModule(str(tmp_path)).prepare_data()
    with pytest.raises(DataUnavailableError, match="no images"):
        ImageFolderDataModule(str(tmp_path)).setup()
    monkeypatch.chdir(tmp_path)
    code = main(["fit", "-c", str(CONFIGS / "cifar.yaml"), "--data.init_args.download", "false",
                 "--data.init_args.data_dir", str(tmp_path / "nowhere"), "--trainer.accelerator", "cpu",
                 "--trainer.devices", "1", "--trainer.enable_model_summary", "false"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cifar-10-python.tar.gz" in err and "nowhere" in err
    assert not list(tmp_path.rglob("*.ckpt"))
