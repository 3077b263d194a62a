"""Part reliance in every independent world (the paper's Fig. 4/10, one value per world for the claims).

For each world (a ``ltlib.miniworld.experiments.Study``), on class-balanced images with both parts in full
view (``diagnostics.unoccluded_images``), the occlusion head reliance (``ltlib.miniworld.attribution``: the
head's share of the true-class log-probability lost when each part is replaced by background) of

- every foundation model's zero-shot classifier (Fig. 4: which part each model relies on);
- every foundation model after LIFT fine-tuning (LA), and the backdoor adjustment over them: the sum of
  the fine-tuned members' logits, the official code's rule (Fig. 10: what the combination relies on).

The *reliance balance* of a classifier is ``min(h, 1 − h)`` with ``h`` its mean head reliance: 0.5 when it
draws on both parts alike, 0 when on one part only. Two contrasts per world judge the registry's claims:
``reliance_follows_part_bias`` (head reliance of the most head-biased model minus that of the most
body-biased one, zero-shot) and ``combination_covers_more`` (balance of the combination minus the mean
balance of its members, fine-tuned).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from ..checkpoint import load_trainable_state
from ..export import read_trainable_tensors
from ..model import EnsembleClassifier, LTClassifier, build_lift_model
from ..runs import load_run
from .attribution import Classifier, part_reliance
from .diagnostics import unoccluded_images, zero_shot_classifier
from .experiments import MAIN_RECIPE, Study
from .tasks import WorldImages
from .world import World

RULE = "logit_sum"  # the backdoor adjustment as the official code computes it (sum of the members' logits)
FOLLOWS, COVERS = "reliance_follows_part_bias", "combination_covers_more"  # the registry's claim keys


@dataclass(frozen=True)
class Reliance:
    """One classifier's mean occlusion head reliance on one world's unoccluded probe images.

    Attributes:
        world_seed: the world; backbones: the model, or the members of a combination joined by ``+``
            (sorted); n_models: 1, or the number of members; method: ``zeroshot`` or ``LA``; seed: the
            fine-tuning seed (-1 for zero-shot); head_reliance: mean per-image head share (NaN: no image
            where removing a part cost anything).
    """

    world_seed: int
    backbones: str
    n_models: int
    method: str
    seed: int
    head_reliance: float

    @property
    def balance(self) -> float:
        """``min(h, 1 − h)``: how evenly the classifier draws on both parts (0.5: alike, 0: one part only)."""
        return min(self.head_reliance, 1.0 - self.head_reliance)

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (``ResultsTable.add_frame``): ``head_reliance`` and ``reliance_balance``, group
        ``unoccluded``, with the world's seed (and the rule for a combination)."""
        keys = {"backbones": self.backbones, "n_models": self.n_models, "method": self.method, "seed": self.seed,
                "world_seed": self.world_seed, "group": "unoccluded", "rule": RULE if self.n_models > 1 else ""}
        return [{**keys, "metric": "head_reliance", "value": self.head_reliance},
                {**keys, "metric": "reliance_balance", "value": self.balance}]


def head_reliance(classifier: Classifier, data: WorldImages, batch_size: int = 500) -> float:
    """Mean occlusion head reliance of ``classifier`` over the images of ``data`` where it is defined."""
    images, labels = data.tensors()
    return part_reliance(classifier, images, data.masks, labels, batch_size=batch_size).mean_head_share()[0]


def fine_tuned_classifier(world: World, run_dir: str | Path) -> LTClassifier:
    """A LIFT run's fine-tuned model, rebuilt on the world's frozen pre-trained backbone with the adapters and
    head of the run's ``checkpoint.pt`` (``ltlib.export.read_trainable_tensors``); in eval mode."""
    record = load_run(run_dir)
    recipe = record["config"]["recipe"]
    model = build_lift_model(world.backbone(record["backbone"]), record["classnames"], adapter=recipe["adapter"],
                             bottleneck=recipe.get("bottleneck"), head_init="random", scale=recipe["cosine_scale"],
                             seed=int(record["seed"]))
    load_trainable_state(model, read_trainable_tensors(Path(run_dir)))
    return model.eval()


def world_reliance(study: Study, per_class: int = 10, probe_seed: int = 0) -> list[Reliance]:
    """Head reliance in one world: each foundation model zero-shot, each fine-tuned (LA, LIFT recipe, main
    setting) and the backdoor adjustment over the fine-tuned models of each seed.

    Args:
        study: one world's mini-world study with zero-shot and LA runs (``ltlib.book.regime.regime_jobs``).
        per_class: unoccluded probe images per class; probe_seed: their seed.
    Returns:
        :class:`Reliance` per classifier (zero-shot first).
    """
    world, ws = study.world, study.world_seed
    data = unoccluded_images(world, per_class=per_class, seed=probe_seed)
    with torch.no_grad():
        out = [Reliance(ws, b, 1, "zeroshot", -1, head_reliance(zero_shot_classifier(world, b), data))
               for b in study.backbones]
        tuned = study.runs(method="LA", model="lift", recipe=MAIN_RECIPE, order="independent", variant="")
        tuned = tuned[tuned["backbone"].isin(study.backbones)]
        for seed, runs in tuned.groupby("seed"):
            members = {b: fine_tuned_classifier(world, d) for b, d in zip(runs["backbone"], runs["run_dir"])}
            out += [Reliance(ws, b, 1, "LA", int(seed), head_reliance(m, data)) for b, m in members.items()]
            if len(members) > 1:
                combined = EnsembleClassifier(list(members.values())).eval()
                out.append(Reliance(ws, "+".join(sorted(members)), len(members), "LA", int(seed),
                                    head_reliance(combined, data)))
    return out


def reliance_contrasts(results: Sequence[Reliance], part_bias: dict[str, float]) -> pd.DataFrame:
    """The registry's two reliance contrasts per world (module docstring), as tidy rows (metric ``contrast``,
    group = the claim's key).

    Args:
        results: :func:`world_reliance` of one or several worlds.
        part_bias: foundation model → its corpus part bias P_m(C = head) (the same in every world).
    Returns:
        Columns ``metric``, ``value``, ``group``, ``method``, ``backbones``, ``n_models``, ``seed``,
        ``world_seed``, ``rule``: one ``reliance_follows_part_bias`` row per world (a difference between two
        models: no backbones, ``n_models`` 0), one ``combination_covers_more`` row per world and fine-tuning
        seed (backbones: the combination's members, ``rule`` logit_sum).
    """
    frame = pd.DataFrame([r.__dict__ | {"balance": r.balance} for r in results])
    head, body = max(part_bias, key=part_bias.get), min(part_bias, key=part_bias.get)
    rows = []
    for ws, world in frame.groupby("world_seed", sort=True):
        zs = world[world["method"] == "zeroshot"].set_index("backbones")["head_reliance"]
        rows.append({"metric": "contrast", "value": float(zs[head] - zs[body]), "group": FOLLOWS,
                     "method": "zeroshot", "backbones": "", "n_models": 0, "seed": -1,
                     "world_seed": int(ws), "rule": ""})
        rows += _covers_rows(world[world["method"] == "LA"], int(ws))
    return pd.DataFrame(rows)


def _covers_rows(tuned: pd.DataFrame, world_seed: int) -> list[dict[str, Any]]:
    """``combination_covers_more`` per fine-tuning seed: the combination's balance minus its members' mean."""
    rows = []
    for seed, runs in tuned.groupby("seed", sort=True):
        combined, single = runs[runs["n_models"] > 1], runs[runs["n_models"] == 1]
        for row in combined.itertuples():
            value = float(row.balance - single["balance"].mean())
            rows.append({"metric": "contrast", "value": value, "group": COVERS, "method": "LA",
                         "backbones": row.backbones, "n_models": int(row.n_models), "seed": int(seed),
                         "world_seed": world_seed, "rule": RULE})
    return rows


def reliance_rows(results: Sequence[Reliance]) -> pd.DataFrame:
    """The ``rows()`` of every result as one frame (``ResultsTable.add_frame``)."""
    return pd.DataFrame([row for r in results for row in r.rows()])


def reliance_summary(results: Sequence[Reliance]) -> pd.DataFrame:
    """What the page shows: head reliance per classifier (rows) and world (columns), with the mean over
    worlds; zero-shot models first, then the fine-tuned ones and their combination."""
    frame = pd.DataFrame([r.__dict__ for r in results])
    label = np.where(frame["method"] == "zeroshot", "zero-shot", "LIFT (LA)")
    label = np.where(frame["n_models"] > 1, "backdoor adjustment (LA, sum of logits)", label)
    frame = frame.assign(classifier=label, world=[f"world {w}" for w in frame["world_seed"]])
    table = frame.pivot_table(index=["classifier", "backbones"], columns="world", values="head_reliance",
                              sort=False)
    return table.assign(**{"mean of worlds": table.mean(axis=1)})


def reliance_frame(results: Sequence[Reliance]) -> pd.DataFrame:
    """One row per classifier: the :class:`Reliance` fields and ``balance`` (``plots.reliance_by_world``)."""
    return pd.DataFrame([r.__dict__ | {"balance": r.balance} for r in results])


CONTRAST_LABELS = {FOLLOWS: "head reliance: most head-biased minus most body-biased model (zero-shot)",
                   COVERS: "reliance balance: combination minus the mean of its members (LA)"}


def contrast_table(contrasts: pd.DataFrame) -> pd.DataFrame:
    """:func:`reliance_contrasts` as the page shows it: one row per claim, a column per world (mean over
    fine-tuning seeds) and the mean of the worlds."""
    table = contrasts.pivot_table(index="group", columns="world_seed", values="value", sort=False)
    table = table.rename(columns=lambda ws: f"world {ws}").assign(**{"mean of worlds": lambda t: t.mean(axis=1)})
    return table.rename(index=CONTRAST_LABELS).rename_axis(index="contrast", columns=None)
