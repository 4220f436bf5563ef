"""`qgfd-eval graphs`: V.U.N. and the degree / clustering / orbit / spectrum MMDs (with their ratios to the training set's)
against sampler steps, or of a file of graphs made elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from datamodules.graph_files import read_graph_file
from datamodules.synthetic_graphs import KINDS, SyntheticGraphDataModule
from models.measures.graph_statistics import HEADLINE_SCORES, KERNELS, GraphReference, graph_scores
from models.processes.graph_diffusion import CHAIN_SAMPLER
from models.training.loading import load_datamodule, load_model
from qgfd_gen.errors import CheckpointError, UsageError
from qgfd_gen.io import check_outputs, write_json

from .distributed import Shard
from .kept_samples import write_graph_samples
from .results import SweepResults
from .settings import GraphEvaluation, GraphFileScoring
from .sweep import chain_sweep, launch_sweep, summary

GRAPH_METRICS = HEADLINE_SCORES
GRID_GRAPHS = 24  # of each setting's samples, drawn in its grid


def score_graph_file(scoring: GraphFileScoring) -> int:
    """Graphs from a file against the benchmark made by its recipe (train for novelty, test for the MMDs)."""
    if scoring.benchmark not in KINDS:
        raise UsageError(f"--benchmark {scoring.benchmark!r}; choose one of {', '.join(KINDS)} (the graphs the "
                         f"samples are compared with)")
    if not scoring.json:
        raise UsageError("--samples needs --json OUT.json (where the scores go)")
    check_outputs({"--json": scoring.json}, {"--samples": scoring.samples})
    graphs = read_graph_file(scoring.samples)
    reference = SyntheticGraphDataModule(scoring.benchmark, num_nodes=scoring.num_nodes, seed=scoring.seed)
    scores = graph_scores(graphs, reference.graphs("train"), reference.graphs("test"), scoring.benchmark, scoring.kernel)
    scores.update(samples_file=str(scoring.samples), benchmark=scoring.benchmark, kernel=scoring.kernel,
                  reference=f"{scoring.benchmark}, {scoring.num_nodes} nodes, seed {scoring.seed}: "
                            f"{len(reference.graphs('train'))} train / {len(reference.graphs('test'))} test graphs")
    write_json(scoring.json, scores)
    print(summary(scores, GRAPH_METRICS))
    return 0


def evaluate_graphs(settings: GraphEvaluation) -> int:
    """Sweep the settings of a graph checkpoint, score each, write the results folder."""
    if settings.kernel not in KERNELS:
        raise UsageError(f"--kernel {settings.kernel!r}; choose one of {', '.join(KERNELS)}")
    return launch_sweep(settings, "graphs", _evaluate_graphs)


def _evaluate_graphs(shard: Shard, job: tuple[GraphEvaluation, Optional[str]]) -> Optional[int]:
    settings, digest = job
    model = load_model(settings.sweep.checkpoint, "graphs", shard.device(settings.sweep.device))
    return chain_sweep(shard, model, settings.sweep, lambda: _prepare_scoring(model, settings, digest),
                       list(GRAPH_METRICS), f"{model.benchmark} graphs")


def _prepare_scoring(model, settings: GraphEvaluation, digest: Optional[str]) -> tuple[SweepResults, Callable, Callable]:
    sweep = settings.sweep
    datamodule = load_datamodule(sweep.checkpoint)
    if datamodule is None or not hasattr(datamodule, "graphs"):
        raise CheckpointError("the checkpoint names no graph data module: its training and test graphs are unknown")
    train, test = datamodule.graphs("train"), datamodule.graphs("test")
    identity = {"checkpoint_sha256": digest, "sampler": CHAIN_SAMPLER, "seed": sweep.seed,
                "num_samples": sweep.num_samples, "batch_size": sweep.batch_size, "kernel": settings.kernel,
                "qgfd_max_iterations": sweep.qgfd_max_iterations}
    meta = {"identity": identity, "checkpoint": sweep.checkpoint, "benchmark": model.benchmark,
            "train_graphs": len(train), "test_graphs": len(test)}
    reference = GraphReference(train, test, model.benchmark, settings.kernel)  # its baseline once for every row

    def keep(result, stem: Path) -> str:
        """The scored graphs as an .npz (`qgfd-eval graphs --samples` scores it again) and their grid."""
        write_graph_samples(result.graphs, f"{stem}.npz", f"{stem}.png", model.benchmark, train[:8], GRID_GRAPHS)
        return f"{stem.name}.npz"

    return SweepResults(sweep.out, meta, list(GRAPH_METRICS)), lambda result: reference.score(result.graphs), keep
