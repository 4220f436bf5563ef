"""Convert a checkpoint written before checkpoint format 2 (flat hyper-parameters, QGFD `steps`/`eps`,
no qgfd-gen record) into the current format, so that `load_from_checkpoint` and the commands take it.

    qgfd-upgrade OLD.ckpt NEW.ckpt

Only run it on checkpoints you trust: old checkpoints hold pickled config objects, which are read here
with the project's own config class as the one allowed type.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from qgfd_gen.errors import CheckpointError, command


@command
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="qgfd-upgrade", description=__doc__.split("\n\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    args = parser.parse_args(argv)
    if Path(args.old).resolve() == Path(args.new).resolve():
        raise CheckpointError(f"the new checkpoint {args.new!r} would overwrite the old one; give another path")
    if not Path(args.old).is_file():
        raise CheckpointError(f"checkpoint {args.old!r} does not exist")
    import torch

    from models.training.upgrade import upgrade_checkpoint
    from qgfd_gen.attention import QGFDConfig
    from qgfd_gen.checkpoints import FORMAT
    from qgfd_gen.io import atomic_path

    try:
        with torch.serialization.safe_globals([QGFDConfig]):
            old = torch.load(args.old, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a file that is not plain checkpoint data
        raise CheckpointError(f"{args.old!r} is not a checkpoint qgfd-upgrade can read safely (only tensors, plain "
                              f"data and the project's QGFDConfig are loaded, so nothing in it runs): "
                              f"{str(error).strip().splitlines()[0][:160]}") from None
    with atomic_path(args.new) as tmp:
        torch.save(upgrade_checkpoint(old), tmp)
    print(f"wrote {args.new} (format {FORMAT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
