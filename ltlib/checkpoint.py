"""Atomic, resumable training checkpoints: trainable weights, optimizer, scaler and position."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError
from .storage import atomic_path

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass(frozen=True)
class Position:
    """How far training got: ``epoch`` in progress and optimizer steps done in it and in total."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors a checkpoint must hold: the model's own ``trainable_state_dict`` when it has one
    (adapters + head, book: Method, 'AdaptFormer'), else the whole state dict (a from-scratch CNN)."""
    getter = getattr(model, "trainable_state_dict", None)
    return getter() if callable(getter) else model.state_dict()


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`trainable_state`."""
    loader = getattr(model, "load_trainable_state_dict", None)
    if callable(loader):
        loader(state)
    else:
        model.load_state_dict(state)


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: Any, position: Position, config_hash: str) -> Path:
    """Write a checkpoint atomically (a crash mid-write keeps the previous checkpoint intact)."""
    payload = {
        "model": {k: v.detach().cpu() for k, v in trainable_state(model).items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "position": position.__dict__,
        "config_hash": config_hash,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: Any, config_hash: str) -> Position:
    """Restore a checkpoint written by :func:`save_checkpoint` for the same config.

    Raises:
        ConfigError: the checkpoint belongs to a different config (resuming would mix recipes).
    """
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if payload["config_hash"] != config_hash:
        raise ConfigError(f"{path}: checkpoint was written for config {payload['config_hash']}, not "
                          f"{config_hash}; use a fresh output folder or the original config")
    load_trainable_state(model, payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    return Position(**payload["position"])
