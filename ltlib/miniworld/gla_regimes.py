"""When does GLA see the pre-training prior? (book: "When does GLA see the prior?")

The paper reads GLA's estimate P̂_P (fitted on zero-shot logits, book: Method, 'The GLA prior estimator') as
the pre-training label prior. In the mini world the prior π is known, so the premise can be tested: for
several pre-training regimes, pre-train one imbalanced model and the uniform-prior reference model (the
estimator's noise floor: a model with no prior to find) in each independent world, fit GLA on the balanced
validation split, and compare P̂_P with π (Spearman ρ, KL) against the floor.

The study runs at a reduced corpus size (:data:`CORPUS_IMAGES` per model) so that every regime fits the
book's time budget in every world; the regimes differ only in what is listed in :data:`REGIMES`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import pandas as pd

from ..errors import ConvergenceError

from .config import load_world_config
from .diagnostics import prior_recovery, zero_shot_accuracy
from .world import World, prepare_worlds

CORPUS_IMAGES = 4000  # images per pre-training corpus in this study (the book's worlds use 24,000): the budget


@dataclass(frozen=True)
class Regime:
    """One pre-training regime: a name, and the fields it changes in the world's ``pretrain`` and ``captions``
    sections (``(field, value)`` pairs)."""

    key: str
    label: str
    pretrain: tuple[tuple[str, Any], ...] = ()
    captions: tuple[tuple[str, Any], ...] = ()


REGIMES = (
    Regime("contrastive", "contrastive (the book's)"),
    Regime("masked", "contrastive, same-class negatives masked", pretrain=(("objective", "contrastive_masked"),)),
    Regime("batch256", "contrastive, batch 256", pretrain=(("batch_size", 256),)),
    Regime("supervised", "supervised (cross-entropy over class prompts)", pretrain=(("objective", "supervised"),)),
    Regime("name_half", "contrastive, captions name the class half the time", captions=(("name_rate", 0.5),)),
)


def study_model(world: World) -> str:
    """The imbalanced model the study pre-trains: the foundation model whose part bias is closest to 0.5 (so
    the regimes are not confounded with a part bias)."""
    return min(world.model_names, key=lambda n: abs(world.part_bias(n) - 0.5))


def regime_world(key: str, world_seed: int, regime: Regime, corpus_images: int = CORPUS_IMAGES,
                 cache_root=None) -> World:
    """The world ``key`` with seed ``world_seed``, its corpora reduced to ``corpus_images`` and ``regime``
    applied."""
    base = load_world_config(key, seed=world_seed)
    config = dataclasses.replace(
        base, corpus=dataclasses.replace(base.corpus, num_images=min(corpus_images, base.corpus.num_images)),
        pretrain=dataclasses.replace(base.pretrain, **dict(regime.pretrain)),
        captions=dataclasses.replace(base.captions, **dict(regime.captions)))
    return World(config, cache_root)


def open_regime_worlds(key: str, world_seeds: Sequence[int], regimes: Sequence[Regime] = REGIMES,
                       corpus_images: int = CORPUS_IMAGES, workers: int | None = None
                       ) -> list[tuple[int, Regime, World]]:
    """Every (world seed, regime) world with its study model and reference pre-trained (one process pool)."""
    worlds = [(ws, r, regime_world(key, ws, r, corpus_images)) for ws in world_seeds for r in regimes]
    prepare_worlds({w: [study_model(w), w.reference_name] for _, _, w in worlds}, workers)
    return worlds


def regime_rows(worlds: Sequence[tuple[int, Regime, World]]) -> pd.DataFrame:
    """Tidy rows per world and regime (method = the regime's key): ``spearman`` and ``kl`` of the study
    model's P̂_P against its π, ``floor_spearman`` of the reference model's P̂_P against the same π,
    ``excess_spearman`` (their difference), ``kl_uniform`` and the model's ``zeroshot_top1`` (%)."""
    rows = []
    for world_seed, regime, world in worlds:
        name = study_model(world)
        values = {**_agreement(world, name), "zeroshot_top1": zero_shot_accuracy(world, name, "test").overall}
        rows += [{"method": regime.key, "backbones": name, "world_seed": world_seed, "group": regime.label,
                  "metric": metric, "value": float(value)} for metric, value in values.items()]
    return pd.DataFrame(rows)


def _agreement(world: World, name: str) -> dict[str, float]:
    """Spearman ρ and KL of ``name``'s P̂_P against its π, the reference's ρ against the same π (the floor) and
    their difference; all NaN when either model is at chance, where GLA's temperature cannot be calibrated
    (``ltlib.priors.calibrate_temperature``) and there is no estimate to judge."""
    try:
        fit, floor = prior_recovery(world, name), prior_recovery(world, world.reference_name)
    except ConvergenceError:
        return dict.fromkeys(("spearman", "kl", "kl_uniform", "floor_spearman", "excess_spearman"), float("nan"))
    floor_rho = _spearman(floor.estimate, fit.truth)
    return {"spearman": fit.rho, "kl": fit.kl, "kl_uniform": fit.kl_uniform, "floor_spearman": floor_rho,
            "excess_spearman": fit.rho - floor_rho}


def _spearman(estimate, truth) -> float:
    from scipy import stats

    return float(stats.spearmanr(estimate, truth)[0])
