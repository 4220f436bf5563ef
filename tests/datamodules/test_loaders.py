"""The training order: a function of (seed, epoch) alone, and a resumed epoch goes on where it stopped."""

import pytest
import torch
from torch.utils.data import SequentialSampler, TensorDataset

from qgfd_gen.errors import CheckpointError
from datamodules.loaders import EpochOrder, EpochOrderLoader, evaluation_loader, training_loader

# source modules these tests cover besides the one whose name they mirror (tests/test_architecture.py)
COVERS = ["qgfd_gen.seeds"]


def test_each_epoch_is_a_permutation_fixed_by_seed_and_epoch():
    order = EpochOrder(50, seed=3)
    first = list(order)
    assert sorted(first) == list(range(50))
    assert list(EpochOrder(50, seed=3)) == first  # a new process, the same order
    assert list(EpochOrder(50, seed=4)) != first
    order.set_epoch(1)
    assert list(order) != first and sorted(order) == list(range(50))
    order.set_epoch(0)
    assert list(order) == first  # iterating draws nothing from any generator it keeps


def test_a_resumed_epoch_yields_the_rest_of_its_own_order_and_keeps_its_length():
    seen = {"count": 0}
    order = EpochOrder(20, seed=0, already_seen=lambda: seen["count"])
    order.set_epoch(2)
    whole = list(order)
    seen["count"] = 8
    assert list(order) == whole[8:]
    assert len(order) == 20  # Lightning counts the epoch's batches from it, resumed or not
    seen["count"] = 21
    with pytest.raises(CheckpointError, match="resuming at example 21 of an epoch of 20"):
        iter(order)
    with pytest.raises(ValueError, match="size=0"):
        EpochOrder(0, seed=0)


def test_the_loader_leaves_the_global_generator_alone_and_checkpoints_its_seed(monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")  # as seed_everything(5) records it
    loader = training_loader(TensorDataset(torch.arange(40)), batch_size=8, num_workers=0, trainer=None)
    assert isinstance(loader, EpochOrderLoader) and loader.sampler.seed == 5  # the run's seed_everything
    state = torch.random.get_rng_state()
    batches = [b[0].tolist() for b in loader]
    assert torch.equal(torch.random.get_rng_state(), state)
    assert len(batches) == 5 and sorted(sum(batches, [])) == list(range(40))
    other = training_loader(TensorDataset(torch.arange(40)), batch_size=8, num_workers=0, trainer=None)
    other.sampler.seed = 99
    other.load_state_dict(loader.state_dict())
    assert [b[0].tolist() for b in other] == batches
    assert [b[0].tolist() for b in evaluation_loader(TensorDataset(torch.arange(10)), 4, 0)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert torch.equal(torch.random.get_rng_state(), state)


def test_a_loader_lightning_rebuilt_around_its_own_sampler_still_checkpoints():
    """overfit_batches rebuilds the training loader around a SequentialSampler (seen with Lightning 2.x)."""
    loader = EpochOrderLoader(TensorDataset(torch.arange(8)), batch_size=4, sampler=SequentialSampler(range(8)))
    assert loader.state_dict() == {}
    loader.load_state_dict({"epoch_order_seed": 3})  # nothing to restore into; no error


def test_derived_seeds_are_fixed_distinct_and_never_the_seed_itself():
    from qgfd_gen.seeds import derived_seed

    seeds = {derived_seed(s, purpose, e) for s in (0, 1) for purpose in ("epoch order", "training") for e in (0, 1)}
    assert len(seeds) == 8 and all(0 <= x < 2**63 for x in seeds) and not seeds & {0, 1}
    assert derived_seed(0, "training") == derived_seed(0, "training")
