"""Random draws that depend only on where they are used: (seed, sample index, stream, position) -> a number.

A counter-based generator (the splitmix64 finaliser on a hashed counter, in int64 tensor arithmetic) runs
on whatever device the tensors live on, draws nothing from a global or per-device generator, and gives
sample i the same numbers whatever batch it is in and whatever device runs it. The molecule sampler uses
it for Gumbel-max draws, so no reverse step moves probabilities to the host.
"""

from __future__ import annotations

import torch
from torch import Tensor

_GOLDEN = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
_MIX1 = -4658895280553007687  # 0xBF58476D1CE4E5B9
_MIX2 = -7723592293110705685  # 0x94D049BB133111EB
_STREAM = 0x2545F4914F6CDD1D
_POSITION = 0x27D4EB2F165667C5


def _int64(value: int) -> int:
    """A Python integer wrapped to int64, as the tensor arithmetic wraps."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(x: Tensor, bits: int) -> Tensor:
    """A logical (unsigned) right shift on int64: torch's >> is arithmetic."""
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def _mix(x: Tensor) -> Tensor:
    z = x + _GOLDEN
    z = (z ^ _shift_right(z, 30)) * _MIX1
    z = (z ^ _shift_right(z, 27)) * _MIX2
    return z ^ _shift_right(z, 31)


def uniform(seed: int, samples: Tensor, stream: int, shape: tuple[int, ...]) -> Tensor:
    """float32 numbers in (0, 1) of shape [len(samples), *shape]: one independent stream per sample index
    (`samples`, int64 on the target device) and per `stream` (a reverse step, say)."""
    positions = torch.arange(int(torch.tensor(shape).prod()) if shape else 1, device=samples.device, dtype=torch.long)
    key = _mix(_mix(torch.full_like(samples, _int64(seed)) ^ (samples * _POSITION)) + _int64(stream * _STREAM))
    bits = _mix(key[:, None] ^ (positions[None] * _POSITION))
    unit = (_shift_right(bits, 40) + 0.5) / float(1 << 24)  # 24 random bits, strictly inside (0, 1)
    return unit.float().view(len(samples), *shape)


def gumbel_argmax(log_probs: Tensor, seed: int, samples: Tensor, stream: int) -> Tensor:
    """A draw from each categorical of `log_probs` [B, ..., K] (Gumbel-max), with counter-based noise."""
    noise = uniform(seed, samples, stream, tuple(log_probs.shape[1:]))
    return (log_probs.float() - torch.log(-torch.log(noise))).argmax(-1)
