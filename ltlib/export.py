"""Use a trained model: export a stage-1 run's adapters and head, and predict on unlabelled images.

An export is a folder with ``model.safetensors`` (the trainable tensors only: AdaptFormers and cosine
head, book: Method, 'AdaptFormer'; no optimiser state, nothing executable) and ``card.json`` (backbone, classes, recipe,
accuracy, source run). The frozen backbone is not copied: it is rebuilt from its registry name and
weights (or from its seed, for a random test backbone). Prediction applies one model, or the backdoor
adjustment over several (``ltlib.adjust.backdoor_adjust``, the paper's P(Y|do(X))), to every image of
a folder and writes one CSV row per image.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from . import __version__
from .checkpoint import CHECKPOINT_NAME, load_trainable_state
from .data.own import IMAGE_SUFFIXES
from .data.transforms import test_transform
from .errors import ConfigError
from .storage import atomic_path, read_json, write_json

CARD_NAME, WEIGHTS_NAME = "card.json", "model.safetensors"
CARD_FORMAT = "ltlib-export/1"
RANDOM_SUFFIX = "-random"  # the command line records random-weight backbones as "<name>-random"
_RECIPE_KEYS = ("adapter", "bottleneck", "cosine_scale", "head_init", "template", "resolution", "tte", "tte_expand")


def random_backbone_seed(name: str) -> int:
    """The seed ``train --random-init`` builds backbone ``name``'s random weights with (one per name)."""
    return zlib.crc32(name.encode()) % 2**31


def export_run(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Write a trained run's adapters + head as safetensors and its card as JSON.

    Args:
        run_dir: a complete stage-1 run of a trained LIFT model (not zero-shot, not a joint ensemble).
        out_dir: the export folder (created).
    Returns:
        ``out_dir``.
    Raises:
        ConfigError: the run is incomplete, zero-shot, of another model kind, or has no checkpoint.
    """
    from safetensors.torch import save_file

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    card = model_card(run_dir)
    state = read_trainable_tensors(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / WEIGHTS_NAME) as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp), metadata={"format": CARD_FORMAT})
    write_json(out_dir / CARD_NAME, card)
    return out_dir


def model_card(run_dir: Path) -> dict:
    """The card of a run: what is needed to rebuild the model and to judge it (from ``run.json``)."""
    path = run_dir / "run.json"
    if not path.is_file() or read_json(path).get("status") != "complete":
        raise ConfigError(f"{run_dir}: not a complete stage-1 run (no complete run.json)")
    run = read_json(path)
    if run["method"] == "zeroshot" or run.get("model", "lift") != "lift":
        raise ConfigError(f"{run_dir}: method {run['method']!r}, model {run.get('model')!r}: only a trained LIFT "
                          "run has adapters and a head to export")
    recipe = run["config"]["recipe"]
    name = run["backbone"]
    random_init = name.endswith(RANDOM_SUFFIX)
    base = name.removesuffix(RANDOM_SUFFIX) if random_init else name
    return {"format": CARD_FORMAT, "ltlib_version": __version__, "backbone": base, "random_init": random_init,
            "random_seed": random_backbone_seed(base) if random_init else None, "task": run["task"],
            "method": run["method"], "seed": run["seed"], "classnames": run["classnames"],
            "class_counts": run["class_counts"], "recipe": {k: recipe.get(k) for k in _RECIPE_KEYS},
            "accuracy": run["accuracy"], "source_run": str(run_dir.resolve()), "git_sha": run.get("git_sha")}


def read_trainable_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    """The adapters' and head's tensors from a run's ``checkpoint.pt`` (plain tensors only)."""
    path = run_dir / CHECKPOINT_NAME
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no {CHECKPOINT_NAME}; was the run trained by this version of ltlib?")
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A rebuilt classifier with its card."""

    model: torch.nn.Module
    card: dict
    source: Path


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu",
               weights: str | os.PathLike | None = None) -> LoadedModel:
    """Rebuild the classifier of an export folder (``card.json``) or directly of a trained run folder.

    Args:
        path: an export folder or a stage-1 run folder.
        device: where the model runs.
        weights: the backbone's local checkpoint (default: its hub tag; random backbones need none).
    Returns:
        :class:`LoadedModel` in eval mode.
    """
    from safetensors.torch import load_file

    from .backbones import build_backbone
    from .model import build_lift_model

    path = Path(path)
    if (path / CARD_NAME).is_file():
        card, state = read_json(path / CARD_NAME), load_file(str(path / WEIGHTS_NAME))
    else:
        card, state = model_card(path), read_trainable_tensors(path)
    if card.get("format") != CARD_FORMAT:
        raise ConfigError(f"{path / CARD_NAME}: format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    backbone = build_backbone(card["backbone"], random_init=card["random_init"], seed=card["random_seed"] or 0,
                              weights=weights, device=device)
    r = card["recipe"]
    model = build_lift_model(backbone, card["classnames"], adapter=r["adapter"], bottleneck=r["bottleneck"],
                             head_init="random", scale=r["cosine_scale"], seed=card["seed"])
    load_trainable_state(model, state)
    return LoadedModel(model.eval(), card, path)


# --------------------------------------------------------------------------- prediction
class ImageFiles(Dataset):
    """Every image under a folder (recursively, sorted), as ``(transform(image), index)``."""

    def __init__(self, folder: str | os.PathLike, transform) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ConfigError(f"--images {self.folder}: not a folder")
        self.paths = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.paths:
            raise ConfigError(f"--images {self.folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        with open(self.paths[index], "rb") as f:
            return self.transform(Image.open(f).convert("RGB")), index


def predict_folder(models: Sequence[LoadedModel], folder: str | os.PathLike, *, rule: str = "logit_sum",
                   top_k: int = 5, batch_size: int = 32) -> pd.DataFrame:
    """Predict every image of ``folder`` with one model or the backdoor adjustment over several.

    Args:
        models: from :func:`load_model`; all must share the class names (same task).
        folder: images, searched recursively.
        rule: how several models combine (``logit_sum`` | ``prob_mean``, ``ltlib.adjust.RULES``).
        top_k: how many classes each row lists.
        batch_size: images per forward pass.
    Returns:
        One row per image: ``path`` (relative to ``folder``), ``prediction``, ``score`` (its probability),
        ``top_k`` (class names) and ``top_k_scores`` (probabilities), both ``;``-separated.
    """
    from .adjust import backdoor_adjust

    classnames = _common_classnames(models)
    logits = [_logits(m, folder, batch_size) for m in models]
    scores = logits[0] if len(models) == 1 else backdoor_adjust(logits, rule)
    probs = torch.softmax(scores.double(), dim=1).numpy()
    k = min(top_k, len(classnames))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    paths = ImageFiles(folder, None).paths
    return pd.DataFrame({
        "path": [p.relative_to(folder).as_posix() for p in paths],
        "prediction": [classnames[row[0]] for row in order],
        "score": [float(probs[i, row[0]]) for i, row in enumerate(order)],
        "top_k": [";".join(classnames[j] for j in row) for row in order],
        "top_k_scores": [";".join(f"{probs[i, j]:.6f}" for j in row) for i, row in enumerate(order)],
    })


def _common_classnames(models: Sequence[LoadedModel]) -> list[str]:
    if not models:
        raise ConfigError("predict: at least one model is needed")
    names = models[0].card["classnames"]
    for m in models[1:]:
        if m.card["classnames"] != names:
            raise ConfigError(f"predict: {m.source} has other classes than {models[0].source}; only models of one "
                              "task can be combined")
    return list(names)


@torch.no_grad()
def _logits(loaded: LoadedModel, folder: str | os.PathLike, batch_size: int) -> torch.Tensor:
    """[N, C] logits of one model over the folder's images, in file order (crops averaged;
    book: Method, 'Test-time crops')."""
    r = loaded.card["recipe"]
    images = ImageFiles(folder, test_transform(r["resolution"], tte=r["tte"], expand=r["tte_expand"]))
    device = next(loaded.model.parameters()).device
    blocks = [loaded.model(x.to(device)).float().cpu() for x, _ in DataLoader(images, batch_size=batch_size)]
    return torch.cat(blocks)
