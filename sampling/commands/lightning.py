"""The `lightning` command: LightningCLI for every model and data module of the workbench.

    lightning fit -c configs/digits.yaml
    lightning fit -c configs/cifar.yaml --trainer.devices 4 --trainer.strategy ddp
    lightning fit -c configs/digits.yaml --ckpt_path last      # resume

Configuration errors (a value out of range, an unknown key) are one line and exit status 2, as are data
missing offline and a --ckpt_path that is missing, unsafe, of an old format or of the other kind of model.
The engine is `models.training.cli` (Lightning 2.5.1+ ships no `lightning` command of its own).
"""

from __future__ import annotations

import sys
from typing import Optional

from qgfd_gen.errors import QGFDError, command


@command(expected=(QGFDError,))  # missing data, a wrong checkpoint: one line; anything else is a traceback
def main(argv: Optional[list[str]] = None) -> int:
    from models.training.cli import run_cli

    run_cli(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
