"""qgfd-features: train the digits feature extractor for offline FID / IS and save it as TorchScript.

    qgfd-features --out digits-classifier.pt

`qgfd-eval images --feature-extractor FILE` then computes FID in the classifier's penultimate features and IS on
its 10-class posteriors (`models.networks.digits_classifier`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from qgfd_gen.errors import command

from .options import positive_int


@command
def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="qgfd-features", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="digits-classifier.pt")
    parser.add_argument("--epochs", type=positive_int, default=30)
    args = parser.parse_args(argv)
    import torch

    from models.training.feature_extractors import train_digits_classifier
    from qgfd_gen.io import atomic_path, check_outputs

    check_outputs({"--out": args.out})
    model, accuracy = train_digits_classifier(args.epochs)
    with atomic_path(args.out) as tmp:
        torch.jit.script(model).save(str(tmp))
    print(f"wrote {args.out}: held-out accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
