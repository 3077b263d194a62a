"""Atomic, resumable training checkpoints: trainable weights, optimizer, scaler and position.

A checkpoint holds only tensors, numbers, strings and containers of them, and is read with
``torch.load(..., weights_only=True)``: a checkpoint found in a shared or downloaded runs folder can
never execute code (see the book's page on reliability).
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ConfigError
from .storage import atomic_path

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # 2: plain data only, with the model fingerprint; 1 (no "format" key): before
_KEYS = ("format", "model", "optimizer", "scaler", "position", "config_hash", "model_fingerprint")
_SAMPLES_PER_TENSOR = 4096  # values of each frozen tensor that enter the model fingerprint


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


def model_fingerprint(model: torch.nn.Module) -> str:
    """What a checkpoint must match besides the recipe: the model before training.

    Names, shapes and dtypes of every tensor, plus evenly spaced values of the frozen ones (the
    backbone: outside ``trainable_state_dict``, or parameters that do not require grad): another
    architecture or another backbone's weights give another fingerprint, while the trainable tensors
    (which training changes) enter by name and shape only.

    Returns:
        16 hex digits.
    """
    state = model.state_dict()
    frozen = (set(state) - set(trainable_state(model))) | {
        name for name, p in model.named_parameters() if not p.requires_grad}
    digest = hashlib.sha256()
    for name, tensor in sorted(state.items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        if name in frozen and tensor.numel():
            flat = tensor.detach().reshape(-1)
            count = min(flat.numel(), _SAMPLES_PER_TENSOR)
            picks = torch.arange(count, dtype=torch.int64) * (flat.numel() - 1) // max(count - 1, 1)
            digest.update(flat[picks.to(flat.device)].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: Any, position: Position, config_hash: str, fingerprint: str = "") -> Path:
    """Write a checkpoint atomically (a crash mid-write keeps the previous checkpoint intact).

    Args:
        fingerprint: :func:`model_fingerprint` of the model before training.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": {k: v.detach().cpu() for k, v in trainable_state(model).items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "position": dict(position.__dict__),
        "config_hash": config_hash,
        "model_fingerprint": fingerprint,
    }
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except RuntimeError as exc:  # torch's zip writer reports a failed write (e.g. ENOSPC) as RuntimeError
        raise CheckpointError(f"{path}: cannot write the checkpoint ({_first_line(exc)}); is the disk full? "
                              "The previous checkpoint is intact") from exc
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The plain-data payload of a checkpoint, loaded with ``weights_only=True`` (nothing executes).

    Raises:
        CheckpointError: the file is truncated or corrupt, holds objects other than plain data, or was
            written by an older ltlib; the message names the file and says how to restart.
    """
    restart = "delete it to restart this run from step 0"
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is damaged
        raise CheckpointError(f"{path}: cannot read the checkpoint (truncated or corrupt: not a torch zip "
                              f"archive); {restart}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused: the checkpoint holds objects other than tensors and plain data; "
                              f"ltlib never executes code from a file. If you wrote it with an older ltlib, "
                              f"{restart}") from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot read the checkpoint (truncated or corrupt: {_first_line(exc)}); "
                              f"{restart}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or set(_KEYS) - set(payload):
        found = payload.get("format", 1) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: checkpoint format {found} is not this ltlib's format {CHECKPOINT_FORMAT} "
                              f"(written by an older version, or not a checkpoint); {restart}")
    return payload


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scaler: Any, config_hash: str, fingerprint: str = "") -> Position:
    """Restore a checkpoint written by :func:`save_checkpoint` for the same config and model.

    Raises:
        ConfigError: the checkpoint belongs to a different config or model (resuming would mix them).
        CheckpointError: unreadable, unsafe or old checkpoint (see :func:`read_checkpoint`).
    """
    payload = read_checkpoint(path)
    if payload["config_hash"] != config_hash:
        raise ConfigError(f"{path}: checkpoint was written for config {payload['config_hash']}, not "
                          f"{config_hash}; use a fresh output folder or the original config")
    if payload["model_fingerprint"] != fingerprint:
        raise ConfigError(f"{path}: checkpoint was written for another model (fingerprint "
                          f"{payload['model_fingerprint']}, this model {fingerprint}: another backbone, weights "
                          "or architecture); use a fresh output folder or the original model")
    try:
        load_trainable_state(model, payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: the checkpoint does not fit this model ({_first_line(exc)})") from exc
    if scaler is not None and payload["scaler"] is not None:
        scaler.load_state_dict(payload["scaler"])
    return Position(**payload["position"])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
