"""Data-parallel helpers over ``torch.distributed`` (torchrun; gloo on CPU, nccl on CUDA)."""

from __future__ import annotations

import os
from collections.abc import Mapping
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


SLURM_TO_TORCH = {"SLURM_PROCID": "RANK", "SLURM_NTASKS": "WORLD_SIZE", "SLURM_LOCALID": "LOCAL_RANK"}


def slurm_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The torchrun variables of a process that ``srun`` started directly (one task per GPU), else ``{}``.

    ``SLURM_PROCID`` → ``RANK``, ``SLURM_NTASKS`` → ``WORLD_SIZE``, ``SLURM_LOCALID`` → ``LOCAL_RANK``; a launch
    by torchrun (``RANK`` already set) or a single task is left alone. ``MASTER_ADDR`` and ``MASTER_PORT``
    must be set by the batch script (the first host of ``$SLURM_JOB_NODELIST``; the book's page on the
    full scale has an sbatch example).

    Raises:
        ConfigError: several Slurm tasks but no ``MASTER_ADDR`` / ``MASTER_PORT``.
    """
    if "RANK" in env or int(env.get("SLURM_NTASKS", "1")) <= 1 or "SLURM_PROCID" not in env:
        return {}
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not env.get(name)]
    if missing:
        raise ConfigError(f"{env['SLURM_NTASKS']} Slurm tasks but {' and '.join(missing)} not set: export "
                          "MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1) and "
                          "MASTER_PORT=29500 in the batch script")
    return {torch_name: env[slurm] for slurm, torch_name in SLURM_TO_TORCH.items() if slurm in env}


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every process when ``flag`` is true on at least one (e.g. a stop signal that reached one
    rank): all ranks then stop after the same step, so none waits forever in the next collective."""
    if not ctx.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=ctx.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def init_distributed(device: str | None = None) -> DistContext:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), if any; tasks
    started by Slurm's ``srun`` without torchrun are mapped first (:func:`slurm_environment`).

    Args:
        device: ``"cpu"``, ``"cuda"`` or None (CUDA when available). The backend follows the device:
            nccl on CUDA, gloo on CPU.
    Returns:
        The process's context; a single-process context when not launched by torchrun.
    """
    os.environ.update(slurm_environment(os.environ))
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
