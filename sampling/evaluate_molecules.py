"""`qgfd-eval molecules`: validity, uniqueness, novelty and FCD against sampler steps, or of a SMILES file."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Callable, Optional

from datamodules.chemistry import MAX_SMILES_CHARS, canonical_smiles, decode_raw_graphs, raw_mol_from_smiles, sample_mol
from datamodules.smiles_files import read_smiles_file
from models.processes.graph_diffusion import CHAIN_SAMPLER
from models.measures.graph_kernels import NSPDK_REFERENCE_SIZE, nspdk_mmd
from models.measures.molecule_metrics import ChemNetReference, MoleculeMetrics, fragment_scores, score_molecules
from models.training.loading import load_datamodule, load_model
from qgfd_gen.errors import CheckpointError, UsageError
from qgfd_gen.io import check_outputs, write_json

from .distributed import Shard
from .moses_scoring import scorecard_columns
from .kept_samples import write_molecule_samples
from .results import SweepResults
from .settings import MoleculeEvaluation, SmilesFileScoring
from .sweep import chain_sweep, launch_sweep, summary

MOLECULE_METRICS = ("validity", "uniqueness", "novelty", "fcd")
GRID_MOLECULES = 32  # of each setting's samples, drawn in its grid


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
    if scoring.moses and not scoring.test:
        raise UsageError("--moses needs --test TEST.smi (MOSES's Test set; add --test-sf for its scaffold split TestSF)")
    if scoring.test_sf and not scoring.moses:
        raise UsageError("--test-sf is scored only with --moses; add --moses or drop --test-sf")
    check_outputs({"--json": scoring.json}, {"--samples": scoring.samples, "--train": scoring.train, "--test": scoring.test,
                                             "--test-sf": scoring.test_sf})
    samples = [s or None for s in read_smiles_file(scoring.samples, keep_empty=True)]
    if not samples:
        raise UsageError(f"samples file {scoring.samples!r} holds no samples (one SMILES per line; an empty line "
                         f"is an invalid sample)")
    train = read_reference(scoring.train, "training")
    test = read_reference(scoring.test, "test") if scoring.test else None
    test_sf = read_reference(scoring.test_sf, "scaffold test") if scoring.test_sf else None
    scores = score_molecules(samples, train, test, with_fcd=scoring.fcd and test is not None)
    scores.update(scorecard_columns(samples, test, test_sf, scoring.moses))
    readable = [s if s and len(s) <= MAX_SMILES_CHARS else None for s in samples]
    scores.update(graph_scores([sample_mol(s) for s in samples], [raw_mol_from_smiles(s) for s in readable], test,
                               with_nspdk=scoring.nspdk))
    too_long = sum(len(s) > MAX_SMILES_CHARS for s in samples if s)
    if too_long:
        print(f"warning: {too_long} samples longer than {MAX_SMILES_CHARS} characters counted invalid", file=sys.stderr)
    scores.setdefault("fcd", None)
    scores.update(num_too_long=too_long, samples_file=str(scoring.samples), train_file=str(scoring.train),
                  test_file=scoring.test and str(scoring.test), test_sf_file=scoring.test_sf and str(scoring.test_sf))
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
    mols = (sample_mol(s) for s in test)
    return [m for m in mols if m is not None][:NSPDK_REFERENCE_SIZE]


def graph_scores(mols: list, raw_mols: list, test: Optional[list[str]], with_nspdk: bool) -> dict:
    """Connected share, largest-fragment validity and (with a test set) the NSPDK MMD of the valid samples."""
    scores = fragment_scores(raw_mols)
    if with_nspdk and test is not None:
        scores["nspdk_mmd"] = nspdk_mmd([m for m in mols if m is not None], nspdk_reference(tuple(test)))
    return scores


def evaluate_molecules(settings: MoleculeEvaluation) -> int:
    """Sweep the settings of a molecule checkpoint, score each, write the results folder."""
    return launch_sweep(settings, "molecules", _evaluate_molecules)


def _evaluate_molecules(shard: Shard, job: tuple[MoleculeEvaluation, Optional[str]]) -> Optional[int]:
    settings, digest = job
    model = load_model(settings.sweep.checkpoint, "molecules", shard.device(settings.sweep.device))
    metrics = [m for m in MOLECULE_METRICS if m != "fcd" or settings.fcd]
    return chain_sweep(shard, model, settings.sweep, lambda: _prepare_scoring(model, settings, digest, metrics),
                       metrics, "molecules")


def _prepare_scoring(model, settings: MoleculeEvaluation, digest: Optional[str], metrics: list[str]
                     ) -> tuple[SweepResults, Callable, Callable]:
    """The results folder (refused if it holds another run), the scoring of one setting's molecules and the
    keeping of them."""
    sweep = settings.sweep
    datamodule = load_datamodule(sweep.checkpoint, data_dir=sweep.data_dir)
    if datamodule is None:
        raise CheckpointError("the checkpoint names no data module: training SMILES for novelty are unknown")
    train, test = datamodule.smiles("train"), datamodule.smiles("test")
    identity = {"checkpoint_sha256": digest, "sampler": CHAIN_SAMPLER, "seed": sweep.seed,
                "num_samples": sweep.num_samples, "batch_size": sweep.batch_size, "fcd": settings.fcd,
                "nspdk": settings.nspdk,
                "qgfd_max_iterations": sweep.qgfd_max_iterations, **({"moses": True} if settings.moses else {})}
    meta = {"identity": identity, "checkpoint": sweep.checkpoint, "train_molecules": len(train),
            "test_molecules": len(test), "nspdk_reference_molecules": NSPDK_REFERENCE_SIZE}
    results = SweepResults(sweep.out, meta, metrics)
    novelty, reference = reference_sets(tuple(train), tuple(test) if settings.fcd else None)
    scaffold_test = getattr(datamodule, "scaffold_test_smiles", None)
    test_sf = scaffold_test() if settings.moses and scaffold_test is not None else None

    def score(result) -> dict:
        scores = score_molecules(result.smiles, novelty, reference, with_fcd=settings.fcd)
        raws = decode_raw_graphs(result.atoms, result.bonds, model.vocab)
        scores.update(graph_scores(result.mols, raws, test, with_nspdk=settings.nspdk))
        scores.update(scorecard_columns(result.smiles, test, test_sf, settings.moses))
        return scores

    return results, score, keep_molecules


def keep_molecules(result, stem: Path) -> str:
    """The scored molecules as SMILES (`qgfd-eval molecules --samples` scores them again) and their grid."""
    write_molecule_samples(result.smiles, result.mols, f"{stem}.smi", f"{stem}.png", GRID_MOLECULES)
    return f"{stem.name}.smi"
