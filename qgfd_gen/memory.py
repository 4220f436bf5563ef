"""Memory of a computation on any device, CPU included: every tensor an ATen op creates is counted
from its creation until its storage is freed. Gives the peak of live bytes created by the computation
(inputs that existed before do not count) and the largest single allocation."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class MemoryTracker(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self.largest_bytes = 0
        self._refs: dict[int, int] = {}  # storage address -> live tensors on it
        self._sizes: dict[int, int] = {}

    def _release(self, address: int) -> None:
        self._refs[address] -= 1
        if self._refs[address] == 0:
            self.live_bytes -= self._sizes.pop(address)
            del self._refs[address]

    def _track(self, tensor: torch.Tensor) -> None:
        if tensor.layout != torch.strided:  # a sparse tensor: what holds memory are its index and value tensors
            for part in _sparse_parts(tensor):
                self._track(part)
            return
        storage = tensor.untyped_storage()
        address, size = storage.data_ptr(), storage.nbytes()
        if size == 0:
            return
        if address not in self._refs:
            self._refs[address], self._sizes[address] = 0, size
            self.live_bytes += size
            self.peak_bytes = max(self.peak_bytes, self.live_bytes)
            self.largest_bytes = max(self.largest_bytes, size)
        self._refs[address] += 1
        weakref.finalize(tensor, self._release, address)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {id(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if isinstance(tensor, torch.Tensor) and id(tensor) not in inputs and tensor.device.type != "meta":
                self._track(tensor)
        return out


def _sparse_parts(tensor: torch.Tensor) -> tuple[torch.Tensor, ...]:
    if tensor.layout == torch.sparse_coo:
        return tensor._indices(), tensor._values()
    if tensor.layout == torch.sparse_csr:
        return tensor.crow_indices(), tensor.col_indices(), tensor.values()
    return ()
