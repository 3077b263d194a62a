"""Shared pieces of the fault-injection suite (tests/test_faults_*.py): tiny runs, hostile files, limits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ltlib.recipes import TrainConfig

REPO_ROOT = Path(__file__).resolve().parent.parent


class Blobs(Dataset):
    """Gaussian class blobs with per-item noise from torch's global RNG (a stand-in augmentation)."""

    def __init__(self, n: int = 40, num_classes: int = 4, dim: int = 6, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.targets = torch.arange(n) % num_classes
        self.x = (torch.randn(num_classes, dim, generator=g) * 2)[self.targets] + torch.randn(n, dim, generator=g)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return self.x[i] + 0.3 * torch.randn(self.x.shape[1]), self.targets[i]


def tiny_model(seed: int = 0, num_classes: int = 4, dim: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(dim, 8), nn.ReLU(), nn.Linear(8, num_classes))


def recipe(**kw) -> TrainConfig:
    base = dict(epochs=2, batch_size=8, micro_batch_size=8, lr=0.05, num_workers=0, tte=False,
                checkpoint_every=0, log_every=1, seed=1)
    return TrainConfig(**{**base, **kw})


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


class Hostile:
    """Unpickling this object creates ``marker``: if the marker exists afterwards, code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def run_python(code: str, *, cwd: Path, fsize_limit: int | None = None, timeout: int = 120,
               env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; ``fsize_limit`` (bytes) caps every file it writes
    (RLIMIT_FSIZE: a full disk as seen by the process, root included)."""
    prefix = ""
    if fsize_limit is not None:
        prefix = ("import resource, signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
                  f"resource.setrlimit(resource.RLIMIT_FSIZE, ({fsize_limit}, {fsize_limit}))\n")
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", prefix + code], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


BANNER = "[ltlib "  # every command's first stderr line: what runs where (ltlib.cli.banner)


def error_lines(stderr: str) -> list[str]:
    """The non-empty stderr lines other than the command's banner."""
    return [line for line in stderr.strip().splitlines() if line.strip() and not line.startswith(BANNER)]


def one_line_error(stderr: str) -> str:
    """The last non-empty stderr line, checked to be the only line that is not the command's banner
    (``[ltlib <command>] device …``), a progress bar or a warning."""
    noise = ("train", "eval", "  warnings", BANNER)
    lines = [line for line in stderr.splitlines()
             if line.strip() and not line.startswith(noise) and "Warning" not in line]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]


def logits_npz(path: Path, arrays: dict[str, np.ndarray], compressed: bool = False) -> Path:
    """An ``.npz`` with exactly ``arrays`` (object arrays pickled, as a crafted file would be)."""
    import io
    import zipfile
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, array, allow_pickle=True)
            archive.writestr(f"{name}.npy", buffer.getvalue())
    return path
