"""Discrete denoising diffusion over atoms and bonds, with a graph transformer denoiser whose attention is
QGFD over the noisy bond graph.

What is trained: the denoiser predicts clean atom and bond types from a noisy graph; the loss is the
cross-entropy on both, bonds weighted by `edge_weight`. The chain itself (noise, posterior, sampler,
early exit) belongs to `GraphDiffusion`; atom and bond frequencies and molecule sizes come from the
training set (the data module) and are saved in checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
from rdkit import Chem
from torch import Tensor, nn

from datamodules.chemistry import NUM_BOND_TYPES, QM9_VOCAB, ZINC_VOCAB, AtomVocabulary, decode_graphs, mols_to_smiles
from models.networks.graph_transformer import GraphTransformer, GraphTransformerConfig
from models.processes.graph_diffusion import GraphDiffusion
from models.processes.samples import SampleSet
from qgfd_gen.attention import QGFDConfig

from .base import DiffusionModule
from .optimization import OptimizerConfig

VOCABULARIES = {"qm9": QM9_VOCAB, "zinc": ZINC_VOCAB}
DEFAULT_QGFD = {"alpha": 0.5, "iterations": 3, "transition": "adjacency"}
DEFAULT_OPTIMIZER = {"lr": 2e-4, "weight_decay": 1e-12, "warmup_steps": 500, "ema_decay": 0.999}


@dataclass
class MoleculeSamples(SampleSet):
    """Molecules as padded graphs and as RDKit molecules, and what producing them cost (the fields of
    SampleSet; the molecule chain rejects no steps, so `rejected` is zeros)."""

    atoms: Tensor  # [num, n] (-1 = padding)
    bonds: Tensor  # [num, n, n]
    mols: list  # RDKit molecules, None where invalid
    smiles: list  # canonical SMILES, None where invalid


class MoleculeDiffusion(DiffusionModule):
    """dataset: which vocabulary (qm9 | zinc); num_train_timesteps: length of the chain; network: the
    graph transformer's widths; qgfd: QGFD over the bond graph (alpha 0 = plain graph transformer);
    val_samples molecules are sampled in `val_sample_steps` jumps after each validation (0 = none) and scored
    (validity, uniqueness, novelty, and FCD against the first `val_fcd_reference` test molecules; 0 = no FCD);
    `lightning test` measures the loss on the test split and scores test_samples molecules (validity,
    uniqueness, novelty against the training split, FCD against the test split)."""

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
        network, qgfd = GraphTransformerConfig.coerce(network), QGFDConfig.coerce(qgfd, **DEFAULT_QGFD)
        optimizer = OptimizerConfig.coerce(optimizer, **DEFAULT_OPTIMIZER)
        if qgfd.transition != "adjacency":
            raise ValueError(f"qgfd.transition={qgfd.transition!r}: molecules diffuse over their bond graph; use 'adjacency'")
        self.plain_hyperparameters(network=network, qgfd=qgfd, optimizer=optimizer)
        self.vocab: AtomVocabulary = VOCABULARIES[dataset]
        self.diffusion = GraphDiffusion(len(self.vocab), NUM_BOND_TYPES, self.vocab.max_atoms, num_train_timesteps)
        self.denoiser = GraphTransformer(len(self.vocab), NUM_BOND_TYPES, network, qgfd, self.vocab.max_atoms,
                                         bond_signal=self.diffusion.bonds.alpha_bar)
        self.build_training(self.denoiser, optimizer)

    @property
    def network(self) -> nn.Module:
        return self.denoiser

    def setup(self, stage: str) -> None:
        """The chain's noise limit comes from the training data, once (then it lives in checkpoints)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not bool(self.diffusion.statistics_set) and datamodule is not None and hasattr(datamodule, "statistics"):
            self.diffusion.set_statistics(*datamodule.statistics())

    # ------------------------------------------------------------------ training
    def training_step(self, batch, batch_idx: int) -> Tensor:
        atoms, bonds = batch
        t = torch.randint(1, self.diffusion.num_timesteps + 1, (atoms.shape[0],), device=atoms.device)
        loss, atom_loss, bond_loss = self.diffusion.loss(self.denoiser, atoms, bonds, t, self.hparams.edge_weight)
        size = atoms.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict({"train/atom_ce": atom_loss, "train/bond_ce": bond_loss}, batch_size=size)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        self.fixed_noise_loss(batch, batch_idx, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self.fixed_noise_loss(batch, batch_idx, "test")

    def fixed_noise_loss(self, batch, batch_idx: int, split: str) -> None:
        """Loss at timesteps and noise fixed by the batch index, so that runs compare."""
        atoms, bonds = batch
        state = torch.random.get_rng_state()
        torch.manual_seed(10_000 + batch_idx)
        t = torch.randint(1, self.diffusion.num_timesteps + 1, (atoms.shape[0],)).to(atoms.device)
        loss, atom_loss, bond_loss = self.diffusion.loss(self.denoiser, atoms, bonds, t, self.hparams.edge_weight)
        torch.random.set_rng_state(state)
        self.log_dict({f"{split}/loss": loss, f"{split}/atom_ce": atom_loss, f"{split}/bond_ce": bond_loss},
                      sync_dist=True, batch_size=atoms.shape[0])

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
        module's SMILES novelty against the training split and FCD against the first val_fcd_reference test
        molecules (their ChemNet statistics computed once per run)."""
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
        scores = score_molecules(samples.smiles, *self._val_references, with_fcd=bool(self.hparams.val_fcd_reference))
        self.log_dict({f"val/{k}": float(scores[k]) for k in ("validity", "uniqueness", "novelty", "fcd")
                       if scores.get(k) is not None}, sync_dist=True)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def check_sampling(self, num: int, steps: Optional[int] = None, exit_share: Optional[float] = None) -> None:
        """Every argument of `sample` checked without sampling: commands call it before any progress bar or file."""
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ValueError(f"num={num!r}; need at least 1 sample")
        if exit_share is not None and not 0 < exit_share <= 1:
            raise ValueError(f"exit_share={exit_share!r}; need a fraction in (0, 1] (or None)")
        self.diffusion.timestep_schedule(steps)

    def sample(self, num: int, steps: Optional[int] = None, seed: int = 0, use_ema: bool = True, batch_size: int = 512,
               correct: bool = False, exit_share: Optional[float] = None,
               progress: Optional[Callable[[int], None]] = None, batches: Optional[Sequence[int]] = None) -> MoleculeSamples:
        """`num` molecules: sizes from the training distribution, then the reverse chain in `steps` jumps
        (all timesteps when None). Molecule i depends on (seed, i) only: not on the batch size, and every draw
        stays on the model's device. exit_share in (0, 1]: per-molecule early exit once the predicted molecule
        has stayed the same valid, connected molecule over that share of the chain's timesteps (see
        GraphDiffusion.sample). batches: run only the batches starting at these indices (one process of several)."""
        self.check_sampling(num, steps, exit_share)
        was_training, start = self.training, time.perf_counter()
        self.eval()
        denoise, iterations = self.counting_network(use_ema)
        all_atoms, all_bonds, evaluations = [], [], []
        for lo in range(0, num, batch_size) if batches is None else sorted(batches):
            count = min(batch_size, num - lo)
            index = torch.arange(lo, lo + count, device=self.device)
            atoms, bonds, used = self.diffusion.sample(denoise, index, steps, seed, exit_share, self.is_connected_molecule)
            all_atoms.append(atoms.cpu())
            all_bonds.append(bonds.cpu())
            evaluations.append(used)
            if progress:
                progress(count)
        self.train(was_training)
        atoms, bonds = torch.cat(all_atoms), torch.cat(all_bonds)
        mols = decode_graphs(atoms, bonds, self.vocab, correct=correct)
        qgfd_iterations = sum(iterations) / len(iterations) if iterations else None
        used = torch.cat(evaluations)
        return MoleculeSamples(evaluations=used, rejected=torch.zeros_like(used), qgfd_iterations=qgfd_iterations,
                               seconds=time.perf_counter() - start, atoms=atoms, bonds=bonds, mols=mols,
                               smiles=mols_to_smiles(mols))

    def is_connected_molecule(self, atoms: Tensor, bonds: Tensor) -> Tensor:
        """[B] bool: which padded graphs are valid molecules (RDKit sanitizes them) in one piece."""
        mols = decode_graphs(atoms.cpu(), bonds.cpu(), self.vocab)
        return torch.tensor([m is not None and len(Chem.GetMolFrags(m)) == 1 for m in mols], dtype=torch.bool)
