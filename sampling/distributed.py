"""Sampling split across processes (`--devices N`, `--num-nodes M`) with Lightning Fabric's DDP strategy.

The work is cut into the batches one process would run (sample indices 0, B, 2B, ...); process r of W runs
batches r, r + W, r + 2W, ... Every random draw depends on the seed and the batch's first index only (the
initial noise is one stream for all samples, a stochastic sampler's noise is seeded per batch, molecules use
counter-based noise per index), so the gathered samples are the ones one process draws with the same batch
size, whatever W is. The main process gathers every share and alone computes metrics and writes files:
FID / IS see exactly the images a single process would give them, in the same order.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional, TypeVar

import torch

from models.processes.samples import SampleSet
from qgfd_gen.errors import UsageError

S = TypeVar("S", bound=SampleSet)


@dataclasses.dataclass
class Shard:
    """Which part of the work this process does; one process (the default) does all of it."""

    rank: int = 0
    world: int = 1
    fabric: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def batches(self, num: int, batch_size: int) -> Optional[list[int]]:
        """First indices of this process's batches (None: all of them, one process)."""
        if self.world == 1:
            return None
        return [lo for i, lo in enumerate(range(0, num, batch_size)) if i % self.world == self.rank]

    def share(self, num: int, batch_size: int) -> int:
        """How many samples this process draws."""
        batches = self.batches(num, batch_size)
        return num if batches is None else sum(min(batch_size, num - lo) for lo in batches)

    def broadcast(self, obj: Any) -> Any:
        return obj if self.world == 1 else self.fabric.broadcast(obj, src=0)

    def device(self, default: str) -> str:
        """The device this process samples on: its own GPU under DDP, else the one asked for."""
        return default if self.fabric is None else str(self.fabric.device)

    def gather(self, result: S, started: float, batch_size: int) -> Optional[S]:
        """Every process's share of a sample result, merged in index order on the main process (None
        elsewhere); `seconds` becomes the wall time from `started` to the end of the gather."""
        if self.world == 1:
            return dataclasses.replace(result, seconds=time.perf_counter() - started)
        shares = [None] * self.world
        torch.distributed.all_gather_object(shares, _to_cpu(result))
        if not self.is_main:
            return None
        return merge_shares(shares, batch_size, time.perf_counter() - started)


def _to_cpu(result: Any) -> Any:
    return dataclasses.replace(result, **{f.name: getattr(result, f.name).cpu() for f in dataclasses.fields(result)
                                          if isinstance(getattr(result, f.name), torch.Tensor)})


def merge_shares(shares: list[S], batch_size: int, seconds: float) -> S:
    """Shares of one sample set (rank r holds batches r, r + W, ...), back into index order: tensor and list
    fields concatenated (the per-sample costs among them, so their summary covers all samples), QGFD
    iterations averaged by share size."""
    world, sizes = len(shares), [len(share.evaluations) for share in shares]
    order = []  # (rank, start, stop) of each batch, in index order
    positions = [0] * world
    for index in range(sum(-(-size // batch_size) for size in sizes)):
        rank = index % world
        count = min(batch_size, sizes[rank] - positions[rank])
        order.append((rank, positions[rank], positions[rank] + count))
        positions[rank] += count
    merged = {}
    for field in dataclasses.fields(shares[0]):
        values = [getattr(share, field.name) for share in shares]
        if isinstance(values[0], torch.Tensor):
            merged[field.name] = torch.cat([values[r][a:b] for r, a, b in order])
        elif isinstance(values[0], list):
            merged[field.name] = [item for r, a, b in order for item in values[r][a:b]]
    iterations = [(s.qgfd_iterations, n) for s, n in zip(shares, sizes) if s.qgfd_iterations is not None and n]
    return dataclasses.replace(
        shares[0], **merged, seconds=seconds,
        qgfd_iterations=sum(i * n for i, n in iterations) / sum(n for _, n in iterations) if iterations else None)


def launch(function: Callable[[Shard, Any], Any], args: Any, devices: int, num_nodes: int, device: str,
           num: int, batch_size: int) -> Any:
    """function(shard, args) in one process, or in devices x num_nodes processes (DDP, Fabric's spawn launcher:
    it needs no script to re-run, so it works the same from a console command and from Python); returns what
    the main process returned. `num` samples in batches of `batch_size` must give every process a batch."""
    if devices * num_nodes == 1:
        return function(Shard(), args)
    batches = -(-num // batch_size)
    if batches < devices * num_nodes:
        raise UsageError(f"{num} samples in batches of {batch_size} make {batches} batch(es) for {devices * num_nodes} "
                         f"processes; lower --batch-size to at most {max(1, num // (devices * num_nodes))} or use fewer devices")
    from lightning.fabric import Fabric

    accelerator = torch.device(device).type
    if accelerator == "mps":
        raise UsageError(f"--devices {devices}: MPS is one device; run with --devices 1")
    fabric = Fabric(accelerator=accelerator, devices=devices, num_nodes=num_nodes, strategy="ddp_spawn")
    try:
        return fabric.launch(_run_shard, function, args)
    except torch.multiprocessing.ProcessRaisedException as error:
        last = str(error).strip().splitlines()[-1]
        raise UsageError(f"a sampling process failed: {last}") from None


def _run_shard(fabric, function: Callable[[Shard, Any], Any], args: Any) -> Any:
    """One process's work; then the processes wait for each other and the process group is taken down before
    any exits (a gloo group left alive at exit can abort a process that finished first). An error skips this:
    the launcher then ends the other processes, as before."""
    result = function(Shard(fabric.global_rank, fabric.world_size, fabric), args)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return result
