"""Data-parallel helpers over ``torch.distributed`` (torchrun; gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), if any.

    Args:
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when available). The backend follows the device:
            nccl on CUDA, gloo on CPU.
    Returns:
        The process's context; a single-process context when not launched by torchrun.
    """
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r}: expected 'cpu' or 'cuda' (torchrun picks the GPU of each process)")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device; pass --device cpu")
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if kind.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group (no-op for a single process)."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every process (no-op for a single process)."""
    if ctx.enabled:
        dist.barrier()


def all_reduce_sum(value: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over processes (returns the input for a single process)."""
    if ctx.enabled:
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def gather_rows(rows: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate per-process row blocks in rank order (blocks may differ in length).

    Args:
        rows: [n_rank, ...] on ``ctx.device``.
    Returns:
        [Σ n_rank, ...], identical on every process.
    """
    if not ctx.enabled:
        return rows
    sizes = [torch.zeros(1, dtype=torch.long, device=rows.device) for _ in range(ctx.world_size)]
    dist.all_gather(sizes, torch.tensor([rows.shape[0]], device=rows.device))
    longest = int(max(s.item() for s in sizes))
    padded = rows.new_zeros((longest, *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    blocks = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(blocks, padded)
    return torch.cat([b[: int(s.item())] for b, s in zip(blocks, sizes)])
