"""The regime probes (ltlib.book.regime_probes): the committed lever list, its checks and the probes' runs."""

from __future__ import annotations

import pytest

from ltlib.book.regime_probes import COLUMNS, Probe, load_probes, main, probe_jobs, slug, world_file
from ltlib.config import load_yaml
from ltlib.errors import ConfigError
from ltlib.miniworld.config import load_world_config
from ltlib.paths import regime_probes_path
from ltlib.storage import read_table


def test_the_committed_probes_load_and_start_from_the_default_world():
    probes = load_probes()
    assert probes[0].name == "default" and not probes[0].world and not probes[0].finetune
    assert probes[0].epochs_factor == 1 and probes[0].pretrain_cost == 1.0
    assert len({slug(p.name) for p in probes}) == len(probes)  # one world file each


@pytest.mark.parametrize("entry, message", [
    ({"name": "x", "what": "y"}, "expected the keys"),
    ({"name": "x", "what": "y", "pretrain_cost": 1, "colour": 1}, "expected the keys"),
    ({"name": "x", "what": "y", "pretrain_cost": 1, "world": {"corpora": {"min_count": 3}}}, "'corpora'"),
    ({"name": "x", "what": "y", "pretrain_cost": 1, "world": {"corpus": {"min_count": "many"}}}, "min_count"),
    ({"name": "x", "what": "y", "pretrain_cost": 1, "world": 5}, "world (a mapping of sections)"),
    ({"name": "x", "what": "y", "pretrain_cost": 1, "finetune": {"lr": -1}}, "(x): invalid training parameter lr"),
    ({"name": "x", "what": "y", "pretrain_cost": 1, "epochs_factor": 0}, "(x): finetune_epochs_factor"),
    ({"name": "x", "what": "y", "pretrain_cost": 0}, "pretrain_cost must be a positive number"),
])
def test_a_bad_probe_is_one_error_naming_the_file_and_the_probe(tmp_path, entry, message):
    path = tmp_path / "probes.yaml"
    path.write_text(__import__("yaml").safe_dump({"probes": [{"name": "ok", "what": "-", "pretrain_cost": 1},
                                                             entry]}), encoding="utf-8")
    with pytest.raises(ConfigError, match="probe") as info:
        load_probes(path)
    assert str(info.value).startswith(f"{path}: probe 2")
    assert message in str(info.value)


def test_duplicate_probe_names_are_refused(tmp_path):
    path = tmp_path / "probes.yaml"
    path.write_text("probes:\n  - {name: a, what: -, pretrain_cost: 1}\n  - {name: a, what: -, pretrain_cost: 1}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError, match="unique"):
        load_probes(path)


def test_the_world_file_changes_only_the_probes_fields(tmp_path):
    probe = Probe("floor 20", "-", 1.0, world={"corpus": {"min_count": 20}})
    changed = load_world_config(world_file(probe, tmp_path))
    default = load_world_config("default")
    assert changed.corpus.min_count == 20
    assert changed.corpus.num_images == default.corpus.num_images  # the rest of the section is the default's
    assert changed.pretrain == default.pretrain and changed.tasks == default.tasks
    assert load_yaml(world_file(probe, tmp_path, base="smoke"))["extends"] == "smoke"


def test_recipe_overrides_reach_the_lift_fine_tuning_runs_only():
    probe = Probe("b", "-", 1.0, finetune={"bottleneck": 16})
    jobs = probe_jobs(probe, "w", ["m1", "m2"], "ref", [0], world_seed=3)
    tuned = [j for j in jobs if j.model == "lift" and j.method == "LA"]
    assert [j.backbone for j in tuned] == ["m1", "m2"] and all(j.overrides == (("bottleneck", 16),) for j in tuned)
    assert all(j.overrides == () for j in jobs if j not in tuned)  # zero-shot and the scratch control
    assert [(j.backbone, j.method) for j in jobs if j.backbone == "ref"] == [("ref", "zeroshot")]
    assert {j.world_seed for j in jobs} == {3}


def test_an_unknown_probe_name_exits_2(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--root", str(tmp_path), "--only", "no such probe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --only: no probe(s) ['no such probe']") and err.count("\n") == 1


def test_the_committed_table_has_one_measured_row_per_probe():
    table = read_table(regime_probes_path())
    assert tuple(table.columns) == COLUMNS
    assert list(table["probe"]) == [p.name for p in load_probes()]
    measured = table[["zeroshot_top1", "finetune_gain", "reference_zeroshot_top1", "finetune_steps"]]
    assert measured.notna().all().all()
    assert ((table.zeroshot_top1 + table.finetune_gain - table.finetuned_top1).abs() < 1e-3).all()  # 4 decimals


def test_the_world_pages_reading_of_the_probes_holds_for_the_committed_table():
    """The world page says: only more pre-training moves zero-shot by more than a couple of points, no lever
    brings the gain near the card's 8 points, and the head alone gains about as much as LIFT."""
    table = read_table(regime_probes_path()).set_index("probe")
    default = table.loc["default"]
    same_pretraining = table[table.pretrain_cost == 1.0]
    assert (same_pretraining.zeroshot_top1 - default.zeroshot_top1).max() < 3.0
    assert (table[table.pretrain_cost > 1.0].zeroshot_top1 - default.zeroshot_top1).min() > 3.0
    assert table.finetune_gain.max() < 8.0 - 3.0
    assert abs(table.loc["head only"].finetune_gain - default.finetune_gain) < 1.0


def test_the_pages_view_legend_and_summary_of_the_table():
    from ltlib.book.regime_probes import LABELS, probe_legend, probe_summary, probe_view, read_probes

    table = read_probes()
    view = probe_view(table)
    assert list(view.columns) == list(LABELS.values()) and view["steps"].dtype.kind == "i"
    legend = probe_legend(table).splitlines()
    assert len(legend) == len(table) and legend[1] == f"- **{table.probe[1]}**: {table.what[1]}"
    summary = probe_summary(table)
    assert summary["best_zeroshot"] == table.zeroshot_top1.max() and summary["best_gain"] == table.finetune_gain.max()
    assert summary["default_zeroshot"] == table.set_index("probe").loc["default", "zeroshot_top1"]
    missing = regime_probes_path().with_name("no-such.csv")
    assert not missing.exists() and read_probes(missing) is None  # the page says none is committed yet
