"""Group accuracies under every prior source and calibration, per world: what the registry's group-wise
claims read (book: Reproduction report; the paper's Fig. 2, Fig. 6 / Tab. 11 and Tab. 8 by group).

For each main single-model run (zero-shot, CE, LA) and for the backdoor adjustment of the LA runs (logit
sum, M = every foundation model) this module scores overall, D-group, P-group and D×P accuracy:

- with P-groups from three **prior sources**: ``estimate`` (GLA's P̂_P of the model itself; for the
  combination the geometric mean of its members', as stage 2 does), ``truth`` (the world's true π; the
  geometric mean for the combination) and ``reference`` (P̂_P of the uniform-prior reference model: the
  estimator's noise floor, a prior that carries no pre-training imbalance). The sources ``estimate:joint``
  and ``truth:joint`` group a single model's classes by the *combination's* prior, so that a cell gain
  (combination minus single model) compares the same classes;
- at two **calibrations**: ``""`` the paper's fixed rule (argmax of the logits), ``"val"`` a post-hoc
  logit adjustment ``z − t·log P_S`` with t chosen on the class-balanced validation split (the
  accuracy-maximising point of the head/tail trade-off; the same t for every group).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..results import backbone_key
from ..stage2 import consensus_prior
from .analysis import class_counts, estimated_priors, group_scores, lift_runs, outputs, run_d_groups
from ..metrics import p_groups

SOURCES = ("estimate", "truth", "reference", "estimate:joint", "truth:joint")
CALIBRATIONS = ("", "val")
TAU_GRID = np.round(np.arange(-1.0, 2.01, 0.1), 2)  # post-hoc τ candidates (LA's own τ = 1 lies inside)


def prior_sets(study, priors: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """source → {backbone or combination key → the prior that groups its classes} (module docstring)."""
    members = list(study.backbones)
    joint_est = consensus_prior([priors[b] for b in members])
    joint_true = consensus_prior([study.true_priors[b] for b in members])
    ref = priors[study.reference]
    combo = backbone_key(members)
    out = {"estimate": {**{b: priors[b] for b in members}, combo: joint_est},
           "truth": {**{b: study.true_priors[b] for b in members}, combo: joint_true},
           "reference": {b: ref for b in [*members, combo]},
           "estimate:joint": {b: joint_est for b in [*members, combo]},
           "truth:joint": {b: joint_true for b in [*members, combo]}}
    return out


def calibrated_tau(val_logits: np.ndarray, val_targets: np.ndarray, log_ps: np.ndarray,
                   grid: Sequence[float] = TAU_GRID) -> float:
    """The t of ``z − t·log P_S`` with the highest accuracy on the balanced validation split (the smallest |t|
    among ties, so that an uninformative split keeps the fixed rule)."""
    scores = [(float((np.argmax(val_logits - t * log_ps, axis=1) == val_targets).mean()), -abs(t), t) for t in grid]
    return float(max(scores)[2])


def _summed_logits(run_dirs: Sequence[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    outs = [outputs(d, split) for d in run_dirs]
    return np.sum([np.asarray(o.logits, dtype=np.float64) for o in outs], axis=0), outs[0].targets


def predictions(run_dirs: Sequence[str], calibration: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Test predictions of the logit sum of ``run_dirs`` at ``calibration`` (module docstring), the targets
    and the t used (0 for the fixed rule)."""
    test, targets = _summed_logits(run_dirs, "test")
    tau = 0.0
    if calibration == "val":
        counts = class_counts(run_dirs[0])
        log_ps = np.log(np.maximum(counts, 1) / counts.sum())
        val, val_targets = _summed_logits(run_dirs, "val")
        tau = calibrated_tau(val, val_targets, log_ps)
        test = test - tau * log_ps
    return np.argmax(test, axis=1), targets, tau


def _units(study) -> list[tuple[str, str, list[str], int]]:
    """(method, backbones key, run dirs, seed) of every single main run and of each seed's LA combination."""
    runs = lift_runs(study, ["zeroshot", "CE", "LA"])
    units = [(r.method, r.backbone, [str(r.run_dir)], int(r.seed)) for r in runs.itertuples()]
    la = runs[runs.method == "LA"]
    for seed, part in la.groupby("seed"):
        if len(part) == len(study.backbones) > 1:
            units.append(("LA", backbone_key(list(part.backbone)), sorted(map(str, part.run_dir)), int(seed)))
    return units


def group_accuracy_rows(study, priors: Mapping[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Tidy rows (metric ``group_accuracy``): method, backbones, n_models, seed, prior_source, calibration,
    tau, group (``overall``, ``D-many``, ``P-few``, ``D-few×P-many``, …), value (%), world_seed."""
    priors = estimated_priors(study) if priors is None else priors
    sets, rows = prior_sets(study, priors), []
    for method, key, run_dirs, seed in _units(study):
        d = run_d_groups(run_dirs[0])
        for calibration in CALIBRATIONS if method != "zeroshot" else ("",):
            preds, targets, tau = predictions(run_dirs, calibration)
            for source in SOURCES:
                scores = group_scores(preds, targets, d, p_groups(sets[source][key]))
                rows += [{"method": method, "backbones": key, "n_models": len(run_dirs), "seed": seed,
                          "prior_source": source, "calibration": calibration, "tau": tau, "group": g,
                          "value": v} for g, v in scores.items()]
    return pd.DataFrame(rows).assign(metric="group_accuracy", world_seed=study.world_seed,
                                     rule=lambda f: np.where(f.n_models > 1, "logit_sum", ""))
