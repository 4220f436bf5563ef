"""Seeds: the one a run was started with, and independent streams derived from it (the training order of each
epoch, the training noise), so that no stream replays the draws that initialised the network."""

from __future__ import annotations

import hashlib
import os

import torch


def run_seed() -> int:
    """The seed the run was started with: Lightning's `seed_everything` (the CLI's `seed_everything:`) records it
    in PL_GLOBAL_SEED; without it, the global generator's initial seed."""
    recorded = os.environ.get("PL_GLOBAL_SEED")
    return int(recorded) if recorded is not None else torch.initial_seed()


def seeded_run() -> bool:
    """Whether the run was started by `seed_everything` (and so has a seed its arms share)."""
    return bool(os.environ.get("PL_GLOBAL_SEED"))


def derived_seed(seed: int, *purpose: object) -> int:
    """A 63-bit seed for one purpose of one run (say `("epoch order", 3)`): a hash, so that streams for different
    purposes, epochs or seeds share no draws, and none is the stream `seed` itself starts."""
    text = ":".join(map(str, (seed, *purpose)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
