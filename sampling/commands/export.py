"""qgfd-export: an image checkpoint as a diffusers pipeline folder.

    qgfd-export --ckpt runs/digits/checkpoints/last.ckpt --out digits-pipeline [--no-ema]

Load it back with `models.load_pipeline(DIR)` (QGFD processors and learned alphas restored); a vanilla
model's folder also loads in plain diffusers (`DDIMPipeline.from_pretrained(DIR)`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional

from qgfd_gen.errors import command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qgfd-export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="an image model's checkpoint (molecule models have no diffusers form)")
    parser.add_argument("--out", required=True, help="the pipeline folder to write (new or empty)")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA")
    return parser


@command
def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from qgfd_gen.checkpoints import check_file
    from qgfd_gen.io import check_outputs, file_digest

    check_outputs({"--out": args.out}, {"--ckpt": args.ckpt}, folders=("--out",))
    check_file(args.ckpt, "images", hint="a {found} model has no diffusers pipeline form; qgfd-export takes image models")
    from models.training.loading import load_model
    from models.training.pipeline import export_pipeline

    model = load_model(args.ckpt, "images", "cpu")
    folder = export_pipeline(model, args.out, use_ema=not args.no_ema,
                             source={"checkpoint": str(args.ckpt), "checkpoint_sha256": file_digest(args.ckpt)})
    attention = model.hparams["unet"]["attention"]
    how = ("DDIMPipeline.from_pretrained(DIR) in plain diffusers, or models.load_pipeline(DIR)"
           if attention == "vanilla" and model.hparams["unet"]["attention_block"] == "attention"
           else "models.load_pipeline(DIR) (QGFD processors and alphas restored)")
    print(f"wrote {folder}: load it with {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
