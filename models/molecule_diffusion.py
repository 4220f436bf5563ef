"""Discrete denoising diffusion over atoms and bonds (marginal transitions, cosine schedule), with a
graph transformer denoiser whose attention is QGFD over the noisy bond graph.

What is trained: the denoiser predicts clean atom and bond types from a noisy graph; the loss is the
cross-entropy on both, bonds weighted by `edge_weight`. Atom and bond frequencies and the distribution
of molecule sizes come from the training set (the data module) and are saved in checkpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from qgfd_gen.attention import QGFDConfig, mean_qgfd_iterations
from qgfd_gen.chemistry import NUM_BOND_TYPES, QM9_VOCAB, ZINC_VOCAB, AtomVocabulary, decode_graphs, mols_to_smiles

from .checkpointing import record_datamodule
from .training import adamw_with_warmup, exponential_moving_average
from .discrete_diffusion import MarginalDiffusion
from .graph_transformer import GraphTransformer

VOCABULARIES = {"qm9": QM9_VOCAB, "zinc": ZINC_VOCAB}


@dataclass
class MoleculeSamples:
    atoms: Tensor  # [num, n] (-1 = padding)
    bonds: Tensor  # [num, n, n]
    mols: list  # RDKit molecules, None where invalid
    smiles: list  # canonical SMILES, None where invalid
    network_evaluations: float  # mean network calls per sample
    qgfd_iterations: Optional[float]
    seconds: float


class MoleculeDiffusion(L.LightningModule):
    def __init__(
        self,
        dataset: str = "qm9",
        diffusion_steps: int = 500,
        node_dim: int = 128,
        edge_dim: int = 32,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.0,
        qgfd: QGFDConfig = QGFDConfig(alpha=0.5, steps=3, transition="adjacency"),
        edge_weight: float = 5.0,
        lr: float = 2e-4,
        weight_decay: float = 1e-12,
        warmup_steps: int = 500,
        ema_decay: float = 0.999,
        val_samples: int = 0,
        val_sample_steps: int = 100,
    ):
        super().__init__()
        if dataset not in VOCABULARIES:
            raise ValueError(f"dataset={dataset!r}; choose one of {', '.join(VOCABULARIES)}")
        if isinstance(qgfd, dict):
            qgfd = QGFDConfig(**qgfd)
        if qgfd.transition != "adjacency":
            raise ValueError(f"qgfd.transition={qgfd.transition!r}: molecules diffuse over their bond graph; use 'adjacency'")
        self.save_hyperparameters()
        self.vocab: AtomVocabulary = VOCABULARIES[dataset]
        atoms, max_atoms = len(self.vocab), self.vocab.max_atoms
        self.denoiser = GraphTransformer(atoms, NUM_BOND_TYPES, node_dim, edge_dim, layers, heads, qgfd, dropout, max_atoms)
        self.ema = exponential_moving_average(self.denoiser, ema_decay)
        self.atom_diffusion = MarginalDiffusion(torch.ones(atoms), diffusion_steps)
        self.bond_diffusion = MarginalDiffusion(torch.ones(NUM_BOND_TYPES), diffusion_steps)
        self.register_buffer("size_distribution", torch.ones(max_atoms + 1))
        self.register_buffer("statistics_set", torch.tensor(False))

    # ------------------------------------------------------------------ data statistics
    def set_statistics(self, atom_counts: Tensor, bond_counts: Tensor, size_counts: Tensor) -> None:
        self.atom_diffusion.set_marginals(atom_counts)
        self.bond_diffusion.set_marginals(bond_counts)
        self.size_distribution.copy_(size_counts.float() / size_counts.sum())
        self.statistics_set.fill_(True)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not bool(self.statistics_set) and datamodule is not None and hasattr(datamodule, "statistics"):
            self.set_statistics(*datamodule.statistics())

    # ------------------------------------------------------------------ training
    def _noise(self, atoms: Tensor, bonds: Tensor, t: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Draw (noisy atoms, noisy bonds) one-hot at step t for clean index tensors."""
        a, k = len(self.vocab), NUM_BOND_TYPES
        atom_probs = self.atom_diffusion.noised_probs(F.one_hot(atoms.clamp(min=0), a).double(), t)
        bond_probs = self.bond_diffusion.noised_probs(F.one_hot(bonds, k).double(), t)
        noisy_atoms = torch.distributions.Categorical(probs=atom_probs).sample()
        noisy_bonds = _symmetric_sample(bond_probs)
        return self._one_hot_graph(noisy_atoms, noisy_bonds, node_mask)

    def _one_hot_graph(self, atoms: Tensor, bonds: Tensor, node_mask: Tensor) -> tuple[Tensor, Tensor]:
        pair_mask = node_mask[:, :, None] & node_mask[:, None, :]
        bonds = bonds * pair_mask * (1 - torch.eye(bonds.shape[1], device=bonds.device, dtype=bonds.dtype))
        x = F.one_hot(atoms.clamp(min=0), len(self.vocab)).float() * node_mask[..., None]
        return x, F.one_hot(bonds, NUM_BOND_TYPES).float()

    def diffusion_loss(self, atoms: Tensor, bonds: Tensor, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        node_mask = atoms >= 0
        x_t, e_t = self._noise(atoms, bonds, t, node_mask)
        atom_logits, bond_logits = self.denoiser(x_t, e_t, t.float() / self.hparams.diffusion_steps, node_mask)
        atom_loss = F.cross_entropy(atom_logits[node_mask], atoms[node_mask])
        n = atoms.shape[1]
        pairs = node_mask[:, :, None] & node_mask[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=atoms.device)
        bond_loss = F.cross_entropy(bond_logits[pairs], bonds[pairs])
        return atom_loss + self.hparams.edge_weight * bond_loss, atom_loss, bond_loss

    def training_step(self, batch, batch_idx: int) -> Tensor:
        atoms, bonds = batch
        t = torch.randint(1, self.hparams.diffusion_steps + 1, (atoms.shape[0],), device=atoms.device)
        loss, atom_loss, bond_loss = self.diffusion_loss(atoms, bonds, t)
        size = atoms.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict({"train/atom_ce": atom_loss, "train/bond_ce": bond_loss}, batch_size=size)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.ema.update_parameters(self.denoiser)

    def validation_step(self, batch, batch_idx: int) -> None:
        """Loss at timesteps and noise fixed by the batch index, so that runs compare."""
        atoms, bonds = batch
        state = torch.random.get_rng_state()
        torch.manual_seed(10_000 + batch_idx)
        t = torch.randint(1, self.hparams.diffusion_steps + 1, (atoms.shape[0],)).to(atoms.device)
        loss, atom_loss, bond_loss = self.diffusion_loss(atoms, bonds, t)
        torch.random.set_rng_state(state)
        size = atoms.shape[0]
        self.log_dict({"val/loss": loss, "val/atom_ce": atom_loss, "val/bond_ce": bond_loss}, sync_dist=True, batch_size=size)

    def on_validation_epoch_end(self) -> None:
        if self.hparams.val_samples and not self.trainer.sanity_checking:
            samples = self.sample(self.hparams.val_samples, steps=self.hparams.val_sample_steps, seed=0)
            valid = [s for s in samples.smiles if s is not None]
            self.log("val/validity", len(valid) / len(samples.smiles), sync_dist=True)
            self.log("val/uniqueness", len(set(valid)) / max(1, len(valid)), sync_dist=True)

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_with_warmup(self.denoiser.parameters(), hp.lr, hp.weight_decay, hp.warmup_steps)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        record_datamodule(self, checkpoint)

    # ------------------------------------------------------------------ sampling
    @staticmethod
    def _settled(clean, previous, current, node_mask: Tensor, tol: float) -> bool:
        """Early exit: the predicted clean graph changed in less than `tol` of its entries since the last
        step, and the chain's current graph already agrees with it but for `tol`. The second condition
        matters at high noise, where the prediction is a steady, uninformative guess: exiting on the
        first alone returned near-identical molecules (measured: uniqueness 0.5% on QM9)."""
        return _changed_fraction(clean, previous, node_mask) < tol and _changed_fraction(clean, current, node_mask) < tol

    def timestep_schedule(self, steps: Optional[int]) -> list[int]:
        """T = t_0 > t_1 > ... > 0, `steps` jumps (all T steps when None)."""
        total = self.hparams.diffusion_steps
        steps = total if steps is None else steps
        if not isinstance(steps, int) or not 1 <= steps <= total:
            raise ValueError(f"steps={steps!r}; need an integer from 1 to {total} (the diffusion steps)")
        grid = torch.linspace(total, 0, steps + 1).round().long().tolist()
        return sorted(set(grid), reverse=True)

    @torch.no_grad()
    def sample(self, num: int, steps: Optional[int] = None, seed: int = 0, use_ema: bool = True, batch_size: int = 512,
               correct: bool = False, exit_tol: Optional[float] = None,
               progress: Optional[Callable[[int], None]] = None) -> MoleculeSamples:
        """`num` molecules: sizes from the training distribution, then the reverse chain over `steps` jumps.
        exit_tol: stop once the predicted clean graph (most likely atom and bond types) changes in less
        than this fraction of its atoms and atom pairs between two steps, and return that prediction."""
        if num < 1:
            raise ValueError(f"num={num!r}; need at least 1 sample")
        if exit_tol is not None and not 0 < exit_tol <= 1:
            raise ValueError(f"exit_tol={exit_tol!r}; need a fraction in (0, 1] (or None)")
        schedule = self.timestep_schedule(steps)
        was_training = self.training
        self.eval()
        start = time.perf_counter()
        generator = torch.Generator().manual_seed(seed)
        net = self.ema.module if use_ema else self.denoiser
        all_atoms, all_bonds, iterations, evaluations = [], [], [], 0
        n_max = self.vocab.max_atoms
        for lo in range(0, num, batch_size):
            count = min(batch_size, num - lo)
            sizes = torch.multinomial(self.size_distribution.cpu().float(), count, replacement=True, generator=generator)
            sizes = sizes.clamp(min=1)
            node_mask = (torch.arange(n_max)[None] < sizes[:, None]).to(self.device)
            atoms = torch.multinomial(self.atom_diffusion.marginals.cpu().float(), count * n_max, replacement=True,
                                      generator=generator).view(count, n_max).to(self.device)
            bond_probs = self.bond_diffusion.marginals.cpu().float().expand(count, n_max, n_max, -1)
            bonds = _symmetric_sample(bond_probs, generator).to(self.device)
            x, e = self._one_hot_graph(atoms, bonds, node_mask)
            previous, used = None, 0
            for t, s in zip(schedule[:-1], schedule[1:]):
                t_vec = torch.full((count,), t, device=self.device, dtype=torch.long)
                s_vec = torch.full((count,), s, device=self.device, dtype=torch.long)
                atom_logits, bond_logits = net(x, e, t_vec.float() / self.hparams.diffusion_steps, node_mask)
                used += 1
                its = mean_qgfd_iterations(net)
                if its is not None:
                    iterations.append(its)
                if exit_tol is not None and s > 0:
                    clean = (atom_logits.argmax(-1), bond_logits.argmax(-1))
                    if previous is not None and self._settled(clean, previous, (x.argmax(-1), e.argmax(-1)), node_mask, exit_tol):
                        upper = torch.triu(clean[1], diagonal=1)
                        x, e = self._one_hot_graph(clean[0], upper + upper.transpose(1, 2), node_mask)
                        atoms = clean[0]
                        break
                    previous = clean
                x_full = F.one_hot(atoms, len(self.vocab)).double()  # padding rows too, so every row is a distribution
                atom_probs = self.atom_diffusion.posterior_probs(x_full, atom_logits.softmax(-1), t_vec, s_vec)
                bond_probs = self.bond_diffusion.posterior_probs(e, bond_logits.softmax(-1), t_vec, s_vec)
                atoms = torch.multinomial(atom_probs.view(-1, atom_probs.shape[-1]).float().cpu(), 1, generator=generator)
                atoms = atoms.view(count, n_max).to(self.device)
                bonds = _symmetric_sample(bond_probs.float().cpu(), generator).to(self.device)
                x, e = self._one_hot_graph(atoms, bonds, node_mask)
            evaluations += used * count
            atoms = torch.where(node_mask, atoms, torch.full_like(atoms, -1))
            all_atoms.append(atoms.cpu())
            all_bonds.append(e.argmax(-1).cpu())
            if progress:
                progress(count)
        self.train(was_training)
        atoms, bonds = torch.cat(all_atoms), torch.cat(all_bonds)
        mols = decode_graphs(atoms, bonds, self.vocab, correct=correct)
        return MoleculeSamples(atoms, bonds, mols, mols_to_smiles(mols), evaluations / num,
                               sum(iterations) / len(iterations) if iterations else None, time.perf_counter() - start)


def _changed_fraction(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor], node_mask: Tensor) -> float:
    """Share of atoms and atom pairs (each pair once) whose type differs between two graphs."""
    pair_mask = node_mask[:, :, None] & node_mask[:, None, :]
    changed = ((a[0] != b[0]) & node_mask).sum() + ((a[1] != b[1]) & pair_mask).sum() / 2
    return float(changed / (node_mask.sum() + pair_mask.sum() / 2))


def _symmetric_sample(probs: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """Draw [B, n, n] categories from [B, n, n, K] probabilities on the upper triangle and mirror it."""
    b, n, _, k = probs.shape
    flat = probs.reshape(-1, k).float()
    if generator is None:
        draws = torch.multinomial(flat, 1).view(b, n, n)
    else:
        draws = torch.multinomial(flat, 1, generator=generator).view(b, n, n)
    upper = torch.triu(draws, diagonal=1)
    return upper + upper.transpose(1, 2)
