"""`qgfd-eval molecules`: validity, uniqueness, novelty and FCD against sampler steps, or of a SMILES file."""

from __future__ import annotations

from pathlib import Path

from datamodules.molecules import read_smiles_file
from models.loading import load_datamodule, load_model
from qgfd_gen.errors import CheckpointError, UsageError
from qgfd_gen.io import file_digest, write_json

from .metrics import ChemNetReference, MoleculeMetrics, score_molecules
from .results import SweepResults
from .sweep import run_sweep, summary

MOLECULE_METRICS = ("validity", "uniqueness", "novelty", "fcd")


def evaluate_smiles_file(args) -> int:
    if not (args.train and args.json):
        raise UsageError("--samples needs --train TRAIN.smi and --json OUT.json (and --test TEST.smi for FCD)")
    lines = Path(args.samples).read_text().split("\n")
    if lines and lines[-1] == "":
        lines = lines[:-1]  # the final newline ends the last line; it is no sample
    samples = [line.strip() or None for line in lines]
    train = read_smiles_file(Path(args.train))
    test = read_smiles_file(Path(args.test)) if args.test else None
    scores = score_molecules(samples, train, test, with_fcd=not args.no_fcd and test is not None)
    if "fcd" not in scores:
        scores["fcd"] = None
    scores["samples_file"] = str(args.samples)
    write_json(args.json, scores)
    print(summary(scores, MOLECULE_METRICS))
    return 0


def evaluate_molecules(args) -> int:
    if args.samples:
        return evaluate_smiles_file(args)
    if not args.ckpt:
        raise UsageError("give --ckpt CKPT to sample, or --samples FILE.smi to score a file")
    model = load_model(args.ckpt, "molecules", args.device)
    datamodule = load_datamodule(args.ckpt, data_dir=args.data_dir)
    if datamodule is None:
        raise CheckpointError("the checkpoint names no data module: training SMILES for novelty are unknown")
    train, test = datamodule.smiles("train"), datamodule.smiles("test")
    out = Path(args.out or f"eval-molecules-{Path(args.ckpt).stem}")
    meta = {"checkpoint": str(args.ckpt), "checkpoint_sha256": file_digest(args.ckpt), "num_samples": args.num_samples,
            "seed": args.seed, "train_molecules": len(train), "test_molecules": len(test)}
    metrics = [m for m in MOLECULE_METRICS if m != "fcd" or not args.no_fcd]
    results = SweepResults(out, meta, metrics)

    def draw(setting, advance):
        return model.sample(args.num_samples, steps=setting["sampler_steps"], seed=args.seed,
                            batch_size=args.batch_size, exit_tol=setting["exit_tol"], progress=advance)

    novelty = MoleculeMetrics(train)  # canonical training SMILES, once per sweep
    reference = None if args.no_fcd else ChemNetReference(test)  # test-set ChemNet statistics, once per sweep
    run_sweep(model, args, results, "posterior-jump", draw,
              lambda result: score_molecules(result.smiles, novelty, reference, with_fcd=not args.no_fcd), metrics)
    plot = results.plot(f"{Path(args.ckpt).name}: {args.num_samples} molecules")
    print(f"wrote {out / 'results.json'}, {out / 'results.csv'}" + (f", {plot}" if plot else ""))
    return 0
