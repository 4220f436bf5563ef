"""What the molecule and the synthetic-graph generators share: the discrete chain over node and edge types
(`GraphDiffusion`), its graph-transformer denoiser with QGFD over the noisy edge graph, the cross-entropy loss,
the noise limit taken from the training set, and the sampling loop. Subclasses say what a node and an edge type
mean and turn sampled graphs into what they score (RDKit molecules, networkx graphs)."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from models.networks.graph_transformer import GraphTransformer, GraphTransformerConfig
from models.processes.graph_diffusion import GraphCheck, GraphDiffusion
from qgfd_gen.attention import QGFDConfig

from .base import DiffusionModule
from .optimization import OptimizerConfig


DEFAULT_QGFD = {"alpha": 0.5, "iterations": 3, "transition": "adjacency"}
DEFAULT_OPTIMIZER = {"lr": 2e-4, "weight_decay": 1e-12, "warmup_steps": 500, "ema_decay": 0.999}


class GraphChainModule(DiffusionModule):
    """Subclasses call `build_chain` in their __init__, after `save_hyperparameters` (which must hold
    `edge_weight`)."""

    def build_chain(self, num_node_types: int, num_edge_types: int, max_nodes: int, num_train_timesteps: int,
                    network: Any, qgfd: Any, optimizer: Any, edges: str) -> None:
        """The chain, the denoiser and their training, from config values (dataclasses, mappings or None for the
        defaults), stored in hparams as plain data; QGFD diffuses over the `edges` (molecules: bonds), so its
        transition is the adjacency one."""
        network, qgfd = GraphTransformerConfig.coerce(network), QGFDConfig.coerce(qgfd, **DEFAULT_QGFD)
        optimizer = OptimizerConfig.coerce(optimizer, **DEFAULT_OPTIMIZER)
        if qgfd.transition != "adjacency":
            raise ValueError(f"qgfd.transition={qgfd.transition!r}: QGFD diffuses over the {edges}; use 'adjacency'")
        self.plain_hyperparameters(network=network, qgfd=qgfd, optimizer=optimizer)
        self.diffusion = GraphDiffusion(num_node_types, num_edge_types, max_nodes, num_train_timesteps)
        steps = self.hparams.get("val_sample_steps")  # checked where validation samples: else it fails after training
        if self.hparams.get("val_samples") and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= num_train_timesteps):
            raise ValueError(f"val_sample_steps={steps!r}; need an integer from 1 to {num_train_timesteps} (the "
                             f"chain's timesteps), else validation's samples fail after training")
        self.denoiser = GraphTransformer(num_node_types, num_edge_types, network, qgfd, max_nodes,
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

    @torch.no_grad()
    def collapse_states(self, batch, seed: int = 0) -> tuple[list[Tensor], Tensor, Tensor]:
        """(node states after the embedding and after each layer, node mask, noisy graph) of the denoiser on the
        batch noised at timesteps spread evenly over the chain, with noise fixed by `seed`, leaving the global
        random state as it was (models.training.collapse measures them)."""
        atoms, bonds = batch
        count = atoms.shape[0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            t = torch.linspace(1, self.diffusion.num_timesteps, count).round().long().to(atoms.device)
            node_mask = atoms >= 0
            x_t, e_t = self.diffusion.noise(atoms, bonds, t, node_mask)
        states: list[Tensor] = []
        self.denoiser(x_t, e_t, t.float() / self.diffusion.num_timesteps, node_mask, states=states)
        return states, node_mask, self.denoiser.noisy_graph(e_t, node_mask)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def check_sampling(self, num: int, steps: Optional[int] = None, exit_share: Optional[float] = None) -> None:
        """Every argument of `sample` checked without sampling: commands call it before any progress bar or file."""
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            raise ValueError(f"num={num!r}; need at least 1 sample")
        if exit_share is not None and not 0 < exit_share <= 1:
            raise ValueError(f"exit_share={exit_share!r}; need a fraction in (0, 1] (or None)")
        self.diffusion.timestep_schedule(steps)

    def draw_graphs(self, num: int, steps: Optional[int], seed: int, use_ema: bool, batch_size: int,
                    exit_share: Optional[float], is_settled: GraphCheck, progress: Optional[Callable[[int], None]],
                    batches: Optional[Sequence[int]]) -> tuple[Tensor, Tensor, Tensor, Optional[float], float]:
        """(atoms [num, n], bonds [num, n, n], network calls per graph, mean QGFD iterations, seconds): the reverse
        chain batch by batch; graph i depends on (seed, i) only. See the subclasses' `sample`."""
        self.check_sampling(num, steps, exit_share)
        was_training, start = self.training, time.perf_counter()
        self.eval()
        denoise, iterations = self.counting_network(use_ema)
        all_atoms, all_bonds, evaluations = [], [], []
        for lo in range(0, num, batch_size) if batches is None else sorted(batches):
            count = min(batch_size, num - lo)
            index = torch.arange(lo, lo + count, device=self.device)
            atoms, bonds, used = self.diffusion.sample(denoise, index, steps, seed, exit_share, is_settled)
            all_atoms.append(atoms.cpu())
            all_bonds.append(bonds.cpu())
            evaluations.append(used)
            if progress:
                progress(count)
        self.train(was_training)
        qgfd_iterations = sum(iterations) / len(iterations) if iterations else None
        return (torch.cat(all_atoms), torch.cat(all_bonds), torch.cat(evaluations), qgfd_iterations,
                time.perf_counter() - start)
