"""Discrete denoising diffusion over atoms and bonds, with a graph transformer denoiser whose attention is
QGFD over the noisy bond graph.

What is trained: the denoiser predicts clean atom and bond types from a noisy graph; the loss is the
cross-entropy on both, bonds weighted by `edge_weight`. The chain itself (noise, posterior, sampler,
early exit) belongs to `GraphDiffusion`; atom and bond frequencies and molecule sizes come from the
training set (the data module) and are saved in checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from rdkit import Chem
from torch import Tensor

from datamodules.chemistry import NUM_BOND_TYPES, QM9_VOCAB, ZINC_VOCAB, AtomVocabulary, decode_graphs, mols_to_smiles
from models.networks.graph_transformer import GraphTransformerConfig
from models.processes.samples import SampleSet
from qgfd_gen.attention import QGFDConfig

from .graph_chain import GraphChainModule
from .optimization import OptimizerConfig

VOCABULARIES = {"qm9": QM9_VOCAB, "zinc": ZINC_VOCAB}


@dataclass
class MoleculeSamples(SampleSet):
    """Molecules as padded graphs and as RDKit molecules, and what producing them cost (the fields of
    SampleSet; the molecule chain rejects no steps, so `rejected` is zeros)."""

    atoms: Tensor  # [num, n] (-1 = padding)
    bonds: Tensor  # [num, n, n]
    mols: list  # RDKit molecules, None where invalid
    smiles: list  # canonical SMILES, None where invalid


class MoleculeDiffusion(GraphChainModule):
    """Discrete graph diffusion for molecules: a marginal-transition chain over atom and bond types with a graph
    transformer denoiser whose node attention is QGFD over the current noisy bond graph.

    Args:
        dataset: the vocabulary, ``qm9`` or ``zinc`` (MOSES uses ``zinc``'s).
        num_train_timesteps: the chain's length.
        network: the graph transformer's widths and switches (`GraphTransformerConfig`).
        qgfd: QGFD over the bond graph (`QGFDConfig`); alpha 0 is the plain graph transformer.
        edge_weight: the bond loss's weight against the atom loss.
        optimizer: AdamW, warm-up, clipping and EMA (`OptimizerConfig`).
        val_samples: molecules sampled after each validation and scored (validity, uniqueness, novelty, FCD
            against the first `val_fcd_reference` test molecules); 0 samples none.
        val_sample_steps: sampler steps of those samples.
        test_samples: molecules `lightning test` samples and scores (novelty against the training split, FCD
            against the test split).
        val_fcd_reference: test molecules in the validation FCD's reference (0: no FCD).
    """

    kind = "molecules"

    def __init__(self, dataset: str = "qm9", num_train_timesteps: int = 500,
                 network: Optional[GraphTransformerConfig] = None, qgfd: Optional[QGFDConfig] = None,
                 edge_weight: float = 5.0, optimizer: Optional[OptimizerConfig] = None,
                 val_samples: int = 0, val_sample_steps: int = 100, test_samples: int = 1000,
                 val_fcd_reference: int = 10_000):
        super().__init__()
        if dataset not in VOCABULARIES:
            raise ValueError(f"dataset={dataset!r}; choose one of {', '.join(VOCABULARIES)}")
        self.save_hyperparameters()
        self.vocab: AtomVocabulary = VOCABULARIES[dataset]
        self.build_chain(len(self.vocab), NUM_BOND_TYPES, self.vocab.max_atoms, num_train_timesteps, network, qgfd,
                         optimizer, edges="bond graph")

    def on_test_epoch_end(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if not self.hparams.test_samples or datamodule is None or not hasattr(datamodule, "smiles"):
            return
        from models.measures.molecule_metrics import score_molecules

        samples = self.sample(self.hparams.test_samples, steps=self.hparams.val_sample_steps, seed=0)
        scores = score_molecules(samples.smiles, datamodule.smiles("train"), datamodule.smiles("test"))
        self.log_dict({f"test/{k}": float(scores[k]) for k in ("validity", "uniqueness", "novelty", "fcd")
                       if scores.get(k) is not None})

    def on_validation_epoch_end(self) -> None:
        """val_samples molecules scored as `qgfd-eval` scores them: validity and uniqueness, and with the data
        module's SMILES novelty against the training split, FCD against the first val_fcd_reference test
        molecules (their ChemNet statistics computed once per run), IntDiv1 and the share passing MOSES's filters."""
        if not self.hparams.val_samples or self.trainer.sanity_checking:
            return
        samples = self.sample(self.hparams.val_samples, steps=self.hparams.val_sample_steps, seed=0)
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "smiles"):
            valid = [s for s in samples.smiles if s is not None]
            self.log_dict({"val/validity": len(valid) / len(samples.smiles),
                           "val/uniqueness": len(set(valid)) / max(1, len(valid))}, sync_dist=True)
            return
        from models.measures.molecule_metrics import ChemNetReference, MoleculeMetrics, score_molecules

        if getattr(self, "_val_references", None) is None:
            wanted = self.hparams.val_fcd_reference
            self._val_references = (MoleculeMetrics(datamodule.smiles("train")),
                                    ChemNetReference(datamodule.smiles("test")[:wanted]) if wanted else None)
        from models.measures.moses_metrics import sample_diversity

        scores = score_molecules(samples.smiles, *self._val_references, with_fcd=bool(self.hparams.val_fcd_reference))
        scores.update(sample_diversity(samples.smiles))  # diversity and MOSES's filters beside quality, cheaply
        self.log_dict({f"val/{k}": float(scores[k]) for k in ("validity", "uniqueness", "novelty", "fcd", "intdiv1",
                                                              "filters") if scores.get(k) is not None}, sync_dist=True)

    # ------------------------------------------------------------------ sampling
    def sample(self, num: int, steps: Optional[int] = None, seed: int = 0, use_ema: bool = True, batch_size: int = 512,
               correct: bool = False, exit_share: Optional[float] = None,
               progress: Optional[Callable[[int], None]] = None, batches: Optional[Sequence[int]] = None) -> MoleculeSamples:
        """`num` molecules: sizes from the training distribution, then the reverse chain in `steps` jumps
        (all timesteps when None). Molecule i depends on (seed, i) only: not on the batch size, and every draw
        stays on the model's device. exit_share in (0, 1]: per-molecule early exit once the predicted molecule
        has stayed the same valid, connected molecule over that share of the chain's timesteps (see
        GraphDiffusion.sample). batches: run only the batches starting at these indices (one process of several)."""
        atoms, bonds, used, qgfd_iterations, seconds = self.draw_graphs(
            num, steps, seed, use_ema, batch_size, exit_share, self.is_connected_molecule, progress, batches)
        mols = decode_graphs(atoms, bonds, self.vocab, correct=correct)
        return MoleculeSamples(evaluations=used, rejected=torch.zeros_like(used), qgfd_iterations=qgfd_iterations,
                               seconds=seconds, atoms=atoms, bonds=bonds, mols=mols,
                               smiles=mols_to_smiles(mols))

    def is_connected_molecule(self, atoms: Tensor, bonds: Tensor) -> Tensor:
        """[B] bool: which padded graphs are valid molecules (RDKit sanitizes them) in one piece."""
        mols = decode_graphs(atoms.cpu(), bonds.cpu(), self.vocab)
        return torch.tensor([m is not None and len(Chem.GetMolFrags(m)) == 1 for m in mols], dtype=torch.bool)
