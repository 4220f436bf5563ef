"""The `lightning` command: LightningCLI for every model and data module of the workbench.

    lightning fit -c configs/digits.yaml
    lightning fit -c configs/cifar.yaml --trainer.devices 4 --trainer.strategy ddp
    lightning fit -c configs/digits.yaml --ckpt_path last      # resume

Lightning 2.5.1+ ships no `lightning` command of its own; this one runs LightningCLI in subclass
mode, so configs name their classes (`class_path: models.ImageDiffusion`).
"""

from __future__ import annotations

import sys
from typing import Optional

import torch
from lightning.pytorch.cli import LightningCLI

from qgfd_gen.errors import QGFDError, command


def default_precision() -> str:
    """Mixed precision where the hardware has it, full precision elsewhere."""
    if torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


@command(expected=(QGFDError,))  # missing data, a wrong checkpoint: one line; anything else is a traceback
def main(argv: Optional[list[str]] = None) -> int:
    run_cli(argv)
    return 0


def run_cli(argv: Optional[list[str]] = None, run: bool = True) -> LightningCLI:
    """LightningCLI over every LightningModule / LightningDataModule (configs name their classes).
    run=False parses and instantiates without a subcommand (for tests and notebooks)."""
    import lightning as L

    return LightningCLI(
        model_class=L.LightningModule,
        datamodule_class=L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        args=argv,
        trainer_defaults={"precision": default_precision()},
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        run=run,
    )


if __name__ == "__main__":
    sys.exit(main())
