"""`qgfd-eval molecules`: validity, uniqueness, novelty and FCD against sampler steps, or of a SMILES file."""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path
from typing import Callable, Optional

from rdkit import Chem

from datamodules.chemistry import MAX_SMILES_CHARS, canonical_smiles, decode_raw_graphs, raw_mol_from_smiles
from datamodules.smiles_files import read_smiles_file
from models.processes.graph_diffusion import CHAIN_SAMPLER
from models.measures.graph_kernels import NSPDK_REFERENCE_SIZE, nspdk_mmd
from models.measures.molecule_metrics import ChemNetReference, MoleculeMetrics, fragment_scores, score_molecules
from models.training.loading import load_datamodule, load_model
from qgfd_gen.checkpoints import check_file
from qgfd_gen.errors import CheckpointError, UsageError
from qgfd_gen.io import check_outputs, file_digest, write_json

from .distributed import Shard, launch
from .results import SweepResults
from .settings import MoleculeEvaluation, SmilesFileScoring
from .sweep import check_sweep, run_sweep, writer_lock, summary

MOLECULE_METRICS = ("validity", "uniqueness", "novelty", "fcd")
MOLECULE_SAMPLER = CHAIN_SAMPLER


def read_reference(path: str, role: str) -> list[str]:
    """A training or test set: its SMILES, refusing a file with none that RDKit accepts."""
    smiles = read_smiles_file(path)
    if not any(canonical_smiles(s) for s in smiles):
        raise UsageError(f"{role} file {path!r} holds no valid SMILES ({len(smiles)} non-empty lines read); "
                         f"give one SMILES per line, or a CSV with a SMILES column")
    return smiles


def evaluate_smiles_file(scoring: SmilesFileScoring) -> int:
    if not (scoring.train and scoring.json):
        raise UsageError("--samples needs --train TRAIN.smi and --json OUT.json (and --test TEST.smi for FCD)")
    check_outputs({"--json": scoring.json}, {"--samples": scoring.samples, "--train": scoring.train, "--test": scoring.test})
    samples = [s or None for s in read_smiles_file(scoring.samples, keep_empty=True)]
    if not samples:
        raise UsageError(f"samples file {scoring.samples!r} holds no samples (one SMILES per line; an empty line "
                         f"is an invalid sample)")
    train = read_reference(scoring.train, "training")
    test = read_reference(scoring.test, "test") if scoring.test else None
    scores = score_molecules(samples, train, test, with_fcd=scoring.fcd and test is not None)
    readable = [s if s and len(s) <= MAX_SMILES_CHARS else None for s in samples]
    mols = [Chem.MolFromSmiles(s) if s else None for s in readable]
    scores.update(graph_scores(mols, [raw_mol_from_smiles(s) for s in readable], test, with_nspdk=scoring.nspdk))
    too_long = sum(len(s) > MAX_SMILES_CHARS for s in samples if s)
    if too_long:
        print(f"warning: {too_long} samples longer than {MAX_SMILES_CHARS} characters counted invalid", file=sys.stderr)
    scores.setdefault("fcd", None)
    scores.update(num_too_long=too_long, samples_file=str(scoring.samples))
    write_json(scoring.json, scores)
    print(summary(scores, MOLECULE_METRICS))
    return 0


@functools.lru_cache(maxsize=2)
def reference_sets(train: tuple[str, ...], test: Optional[tuple[str, ...]]) -> tuple[MoleculeMetrics, Optional[ChemNetReference]]:
    """The canonical training set (novelty) and the test set's ChemNet statistics (FCD), built once per
    process for the same sets: a study evaluates many checkpoints of one data set in a row."""
    # scored on the main process alone (the samples are gathered there), so the metric must not wait for the others
    return MoleculeMetrics(train, sync_on_compute=False), None if test is None else ChemNetReference(test)


@functools.lru_cache(maxsize=2)
def nspdk_reference(test: tuple[str, ...]) -> list:
    """The first NSPDK_REFERENCE_SIZE valid test molecules, the reference of the NSPDK MMD."""
    mols = (Chem.MolFromSmiles(s) for s in test if s and len(s) <= MAX_SMILES_CHARS)
    return [m for m in mols if m is not None][:NSPDK_REFERENCE_SIZE]


def graph_scores(mols: list, raw_mols: list, test: Optional[list[str]], with_nspdk: bool) -> dict:
    """Connected share, largest-fragment validity and (with a test set) the NSPDK MMD of the valid samples."""
    scores = fragment_scores(raw_mols)
    if with_nspdk and test is not None:
        scores["nspdk_mmd"] = nspdk_mmd([m for m in mols if m is not None], nspdk_reference(tuple(test)))
    return scores


def evaluate_molecules(settings: MoleculeEvaluation) -> int:
    """Sweep the settings of a molecule checkpoint, score each, write the results folder."""
    sweep = settings.sweep
    digest = file_digest(sweep.checkpoint) if Path(sweep.checkpoint).is_file() else None
    sweep = dataclasses.replace(sweep, out=str(sweep.out or f"eval-molecules-{Path(sweep.checkpoint).stem}-{(digest or '')[:8]}"))
    check_outputs({"--out": sweep.out}, {"--ckpt": sweep.checkpoint}, folders=("--out",))
    if sweep.processes > 1:  # a bad checkpoint is refused here, before any process starts
        check_file(sweep.checkpoint, "molecules")
    job = (dataclasses.replace(settings, sweep=sweep), digest)
    return launch(_evaluate_molecules, job, sweep.devices, sweep.num_nodes, sweep.device, sweep.num_samples,
                  sweep.batch_size)


def _evaluate_molecules(shard: Shard, job: tuple[MoleculeEvaluation, Optional[str]]) -> Optional[int]:
    """One process's part: every process samples its share; the main process scores and writes."""
    settings, digest = job
    sweep = settings.sweep
    model = load_model(sweep.checkpoint, "molecules", shard.device(sweep.device))
    check_sweep(sweep, lambda s: model.check_sampling(sweep.num_samples, s["sampler_steps"], s["exit_tol"]))
    with writer_lock(shard, sweep.out):  # one run per results folder (the main process holds it)
        metrics = [m for m in MOLECULE_METRICS if m != "fcd" or settings.fcd]
        results, score = (_prepare_scoring(model, settings, digest, metrics) if shard.is_main else (None, None))

        def draw(setting, advance, batches):
            return model.sample(sweep.num_samples, steps=setting["sampler_steps"], seed=sweep.seed,
                                batch_size=sweep.batch_size, exit_share=setting["exit_tol"], progress=advance, batches=batches)

        run_sweep(model, sweep, results, draw, score, metrics, shard)
        if not shard.is_main:
            return None
        plot = results.plot(f"{Path(sweep.checkpoint).name}: {sweep.num_samples} molecules")
        print(f"wrote {Path(sweep.out) / 'results.json'}, {Path(sweep.out) / 'results.csv'}" + (f", {plot}" if plot else ""))
        return 0


def _prepare_scoring(model, settings: MoleculeEvaluation, digest: Optional[str], metrics: list[str]
                     ) -> tuple[SweepResults, Callable]:
    """The results folder (refused if it holds another run) and the scoring of one setting's molecules."""
    sweep = settings.sweep
    datamodule = load_datamodule(sweep.checkpoint, data_dir=sweep.data_dir)
    if datamodule is None:
        raise CheckpointError("the checkpoint names no data module: training SMILES for novelty are unknown")
    train, test = datamodule.smiles("train"), datamodule.smiles("test")
    identity = {"checkpoint_sha256": digest, "sampler": MOLECULE_SAMPLER, "seed": sweep.seed,
                "num_samples": sweep.num_samples, "batch_size": sweep.batch_size, "fcd": settings.fcd,
                "nspdk": settings.nspdk,
                "qgfd_max_iterations": sweep.qgfd_max_iterations}
    meta = {"identity": identity, "checkpoint": sweep.checkpoint, "train_molecules": len(train),
            "test_molecules": len(test), "nspdk_reference_molecules": NSPDK_REFERENCE_SIZE}
    results = SweepResults(sweep.out, meta, metrics)
    novelty, reference = reference_sets(tuple(train), tuple(test) if settings.fcd else None)

    def score(result) -> dict:
        scores = score_molecules(result.smiles, novelty, reference, with_fcd=settings.fcd)
        raws = decode_raw_graphs(result.atoms, result.bonds, model.vocab)
        scores.update(graph_scores(result.mols, raws, test, with_nspdk=settings.nspdk))
        return scores

    return results, score
