"""What the regime card would cost: one lever at a time around the default world (book: The mini world).

The probes (``configs/regimes/probes.yaml``) each change one setting of the default world (corpus floor,
pre-training budget, downstream counts) or of the LIFT recipe (steps, adapter width, learning rate, head only),
train the regime card's runs (:func:`ltlib.book.regime.regime_jobs`, plus the uniform-prior reference's
zero-shot) in world 0 and measure the card's properties (:func:`ltlib.book.regime.measure_regime`). No claim is
computed from them. ``make regime-probes`` writes ``book/data/regime/probes.csv``
(``ltlib.paths.regime_probes_path``); the world page shows it.

    python -m ltlib.book.regime_probes --out book/data/regime [--only NAME ...] [--world-seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import yaml

from ..config import CONFIG_ROOT, load_yaml
from ..errors import ConfigError
from ..miniworld.config import load_world_config
from ..miniworld.experiments import MiniJob, grid, open_studies, scaled_epochs
from ..recipes import load_recipe
from ..storage import atomic_path, write_text
from .regime import measure_regime, regime_jobs, split_accuracy

PROBES_PATH = CONFIG_ROOT / "regimes" / "probes.yaml"
CSV_NAME = "probes.csv"
COLUMNS = ("probe", "what", "pretrain_cost", "zeroshot_top1", "finetune_gain", "finetuned_top1",
           "reference_zeroshot_top1", "scratch_over_chance", "dfew_share", "finetune_steps", "wall_s")


@dataclass(frozen=True)
class Probe:
    """One lever: ``world`` sections replacing the default world's (field by field), ``finetune`` recipe
    overrides for the LIFT runs, ``epochs_factor`` × the fine-tuning epochs, and the stated ``pretrain_cost``
    (pre-training images × epochs relative to the default world)."""

    name: str
    what: str
    pretrain_cost: float
    world: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    finetune: Mapping[str, Any] = field(default_factory=dict)
    epochs_factor: int = 1


def load_probes(path: str | Path = PROBES_PATH) -> list[Probe]:
    """The probes of ``path``, each checked: its world builds, its recipe overrides are valid, its factor is a
    positive integer.

    Raises:
        ConfigError: naming the file and the probe.
    """
    entries = load_yaml(path).get("probes") or []
    probes = [_probe(entry, f"{path}: probe {i + 1}") for i, entry in enumerate(entries)]
    names = [p.name for p in probes]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: probe names must be unique, got {names}")
    return probes


def _probe(entry: Any, where: str) -> Probe:
    known = {f.name for f in dataclasses.fields(Probe)}
    if not isinstance(entry, dict) or not {"name", "what", "pretrain_cost"} <= set(entry) or set(entry) - known \
            or not isinstance(entry.get("world", {}), dict):
        raise ConfigError(f"{where}: expected the keys name, what, pretrain_cost and optionally "
                          f"world (a mapping of sections), finetune, epochs_factor; got {entry!r}")
    probe = Probe(**entry)
    try:
        with tempfile.TemporaryDirectory() as folder:  # the world loader's own `extends` resolves the sections
            load_world_config(world_file(probe, folder))
        load_recipe("mini_lift", **dict(probe.finetune))
        scaled_epochs([MiniJob("default", "m", "LA")], probe.epochs_factor)
    except ConfigError as exc:
        raise ConfigError(f"{where} ({probe.name}): {exc}") from None
    if not isinstance(probe.pretrain_cost, (int, float)) or probe.pretrain_cost <= 0:
        raise ConfigError(f"{where} ({probe.name}): pretrain_cost must be a positive number")
    return probe


def world_file(probe: Probe, folder: str | Path, base: str = "default") -> Path:
    """Write the probe's world as ``<folder>/<slug>.yaml``: ``extends: <base>`` plus its sections."""
    path = Path(folder) / f"{slug(probe.name)}.yaml"
    write_text(path, yaml.safe_dump({"extends": base, **dict(probe.world)}, sort_keys=True))
    return path


def slug(name: str) -> str:
    """A file-name form of a probe's name (letters, digits and dashes)."""
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def probe_jobs(probe: Probe, world: str, backbones: Sequence[str], reference: str, seeds: Sequence[int],
               world_seed: int | None = None) -> list[MiniJob]:
    """The card's runs (:func:`~ltlib.book.regime.regime_jobs`) with the probe's recipe overrides on the LIFT
    runs, and the reference model's zero-shot run."""
    overrides = tuple(dict(probe.finetune).items())
    jobs = [dataclasses.replace(j, overrides=overrides) if j.model == "lift" and j.method != "zeroshot" else j
            for j in regime_jobs(world, backbones, reference, seeds, world_seed)]
    return jobs + grid(world, [reference], ("zeroshot",), seeds, world_seed=world_seed)


def run_probe(probe: Probe, root: str | Path, world_seed: int = 0, workers: int | None = None,
              base: str = "default") -> dict[str, Any]:
    """Train (or reuse) one probe's runs under ``root`` and measure the card in world ``world_seed`` of the
    probe's world (``base``, the default world, with the probe's sections; the tests use the smoke world).

    Returns:
        One row of :data:`COLUMNS`: the card's properties, the fine-tuned accuracy, the reference's zero-shot
        accuracy and the probe's wall seconds (shorter when earlier probes left models in the cache).
    """
    root = Path(root)
    start = time.perf_counter()
    world = str(world_file(probe, root / "worlds", base))
    jobs_for = _JobsFor(probe)
    study, = open_studies("mini", world, "", [0], root / "runs", jobs_for=jobs_for, workers=workers,
                          world_seeds=[world_seed], epochs_factor=probe.epochs_factor)
    card = measure_regime(study)
    reference = study.runs(method="zeroshot")
    reference = reference[reference.backbone == study.reference]["run_dir"]
    return {"probe": probe.name, "what": probe.what, "pretrain_cost": float(probe.pretrain_cost),
            "zeroshot_top1": card["zeroshot_top1"], "finetune_gain": card["finetune_gain"],
            "finetuned_top1": card["zeroshot_top1"] + card["finetune_gain"],
            "reference_zeroshot_top1": split_accuracy(reference.iloc[0]),
            "scratch_over_chance": card["scratch_over_chance"], "dfew_share": card["dfew_share"],
            "finetune_steps": card["finetune_steps"], "wall_s": time.perf_counter() - start}


@dataclass(frozen=True)
class _JobsFor:
    """``open_studies``' ``jobs_for`` for one probe (a picklable callable, not a closure)."""

    probe: Probe

    def __call__(self, world: str, backbones: Sequence[str], reference: str, seeds: Sequence[int],
                 world_seed: int | None = None) -> list[MiniJob]:
        return probe_jobs(self.probe, world, backbones, reference, seeds, world_seed)


def run_probes(probes: Sequence[Probe], root: str | Path, world_seed: int = 0,
               workers: int | None = None) -> pd.DataFrame:
    """:func:`run_probe` for each probe in turn, as one table (columns :data:`COLUMNS`)."""
    return pd.DataFrame([run_probe(p, root, world_seed, workers) for p in probes], columns=list(COLUMNS))


LABELS = {"probe": "probe", "pretrain_cost": "pre-training (× default)", "zeroshot_top1": "zero-shot (%)",
          "finetuned_top1": "LIFT (%)", "finetune_gain": "gain (points)",
          "reference_zeroshot_top1": "reference zero-shot (%)", "scratch_over_chance": "scratch / chance",
          "finetune_steps": "steps"}


def read_probes(path: str | Path | None = None) -> pd.DataFrame | None:
    """The committed probes table (``ltlib.paths.regime_probes_path``), or None before ``make regime-probes``."""
    from ..paths import regime_probes_path
    from ..storage import read_table

    path = Path(path) if path is not None else regime_probes_path()
    return read_table(path) if path.is_file() else None


def probe_view(table: pd.DataFrame) -> pd.DataFrame:
    """The world page's table: one row per probe, the card's accuracy properties in readable columns (what
    each probe changes is :func:`probe_legend`)."""
    view = table[list(LABELS)].astype({"finetune_steps": int})
    return view.rename(columns=LABELS)


def probe_legend(table: pd.DataFrame) -> str:
    """What each probe changes, as a Markdown list for the page (one line per probe)."""
    return "\n".join(f"- **{row.probe}**: {row.what}" for row in table.itertuples())


def probe_summary(table: pd.DataFrame) -> dict[str, Any]:
    """The numbers the world page quotes: the default's values, and the best probe for zero-shot and for the
    fine-tuning gain (value and name)."""
    default = table[table["probe"] == "default"].iloc[0]
    best_zero = table.loc[table["zeroshot_top1"].idxmax()]
    best_gain = table.loc[table["finetune_gain"].idxmax()]
    return {"default_zeroshot": float(default.zeroshot_top1), "default_gain": float(default.finetune_gain),
            "default_reference": float(default.reference_zeroshot_top1),
            "best_zeroshot": float(best_zero.zeroshot_top1), "best_zeroshot_probe": str(best_zero.probe),
            "best_gain": float(best_gain.finetune_gain), "best_gain_probe": str(best_gain.probe)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ltlib.book.regime_probes", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for probes.csv (book/data/regime)")
    parser.add_argument("--root", type=Path, default=Path("results/regime-probes"),
                        help="folder for the probes' worlds and runs (default results/regime-probes)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these probes (names)")
    parser.add_argument("--world-seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        probes = _selected(load_probes(), args.only)
        table = run_probes(probes, args.root, args.world_seed)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / CSV_NAME) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    print(table.drop(columns=["what"]).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0


def _selected(probes: Sequence[Probe], only: Sequence[str] | None) -> list[Probe]:
    if only is None:
        return list(probes)
    unknown = sorted(set(only) - {p.name for p in probes})
    if unknown:
        raise ConfigError(f"--only: no probe(s) {unknown} in {PROBES_PATH}")
    return [p for p in probes if p.name in only]


if __name__ == "__main__":
    sys.exit(main())
