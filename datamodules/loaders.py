"""The loaders every data module uses: training in an order that survives an interruption, evaluation in order,
and neither drawing from the global generator (which the training steps' timesteps and noise come from).

Lightning's default shuffle draws a fresh permutation from the global generator whenever the loader is iterated,
so a run resumed in the middle of an epoch starts a new order and ends that epoch early: some examples are seen
twice, others not at all, and the resumed run trains on other batches than the uninterrupted one would have.
Here epoch e's order is a function of (seed, e) alone, and a resumed iteration goes on with the rest of the very
order it was interrupted in, so an interrupted study run sees the batches of an uninterrupted one.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from qgfd_gen.errors import CheckpointError
from qgfd_gen.seeds import derived_seed, run_seed


class EpochOrder(Sampler[int]):
    """Indices 0..size-1 in the order of epoch `epoch` (set by Lightning through `set_epoch`), starting after the
    `already_seen()` first ones: the examples of this epoch a resumed run has already trained on."""

    def __init__(self, size: int, seed: int, already_seen: Callable[[], int] = lambda: 0):
        if size < 1:
            raise ValueError(f"size={size}; an epoch order needs at least one example")
        self.size, self.seed, self.epoch, self.already_seen = size, seed, 0, already_seen

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(derived_seed(self.seed, "epoch order", epoch))
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        start = self.already_seen()
        if not 0 <= start <= self.size:
            raise CheckpointError(f"resuming at example {start} of an epoch of {self.size}: the checkpoint's "
                                  f"progress does not fit this training set (was it changed, or the batch size, "
                                  f"since the checkpoint was saved?)")
        return iter(self.order(self.epoch)[start:])

    def __len__(self) -> int:
        return self.size  # a whole epoch: Lightning counts an epoch's batches from it, resumed or not


class EpochOrderLoader(DataLoader):
    """A DataLoader over an `EpochOrder`. Its checkpointed state is the order's seed, so a run resumed under
    another `seed_everything` still finishes the order it began (Lightning saves and restores it with the loops)."""

    def state_dict(self) -> dict[str, Any]:
        # (Lightning may have rebuilt the loader around a sampler of its own, as overfit_batches does)
        return {"epoch_order_seed": self.sampler.seed} if isinstance(self.sampler, EpochOrder) else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if isinstance(self.sampler, EpochOrder) and "epoch_order_seed" in state:
            self.sampler.seed = int(state["epoch_order_seed"])


def examples_seen_this_epoch(trainer: Any, batch_size: int) -> Callable[[], int]:
    """How many examples of the current epoch the trainer has already trained on, read when an epoch's iteration
    starts: 0 for a fresh epoch; after a resume, the batches its restored progress counts as done."""

    def count() -> int:
        loop = getattr(getattr(trainer, "fit_loop", None), "epoch_loop", None)
        if loop is None or not getattr(trainer, "training", False):
            return 0
        return int(loop.batch_progress.current.ready) * batch_size

    return count


def training_loader(dataset: Dataset, batch_size: int, num_workers: int, trainer: Optional[Any],
                    collate_fn: Optional[Callable] = None, drop_last: bool = True) -> DataLoader:
    """The shuffled training loader: an `EpochOrderLoader` on one process; under several processes Lightning's
    own DistributedSampler (seeded, set per epoch; a mid-epoch resume there restarts the epoch's order)."""
    options = dict(batch_size=batch_size, num_workers=num_workers, collate_fn=collate_fn, drop_last=drop_last,
                   persistent_workers=num_workers > 0)
    if trainer is not None and getattr(trainer, "world_size", 1) > 1:
        return DataLoader(dataset, shuffle=True, **options)
    # the loader's own generator seeds worker processes, so iterating it leaves the global generator untouched
    seed = run_seed()
    generator = torch.Generator().manual_seed(derived_seed(seed, "loader workers"))
    sampler = EpochOrder(len(dataset), seed, examples_seen_this_epoch(trainer, batch_size))
    return EpochOrderLoader(dataset, sampler=sampler, generator=generator, **options)


def evaluation_loader(dataset: Dataset, batch_size: int, num_workers: int,
                      collate_fn: Optional[Callable] = None) -> DataLoader:
    """An evaluation split, in order and whole. Its own generator (seeding worker processes) keeps the global one
    untouched when validation starts, as a plain DataLoader's iteration would not."""
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_fn,
                      persistent_workers=num_workers > 0, generator=torch.Generator().manual_seed(0))
