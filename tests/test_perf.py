"""The performance page's helpers over a bench table: measured inputs, full-scale estimates, display."""

from __future__ import annotations

import math

import pandas as pd

from ltlib.book import perf
from ltlib.bench.suite import row


def bench_table(rate: float = 240.0) -> pd.DataFrame:
    rows = [row("inference", "M=1, single crop", "gflops_per_image", 35.4, "GFLOPs"),
            row("train", "data pipeline, 1 CPU core", "images_per_second_per_core", rate, "img/s"),
            row("train", "AdaptFormer ViT-B/16, C = 1000", "saved_activation_mib_per_image", 108.0, "MiB"),
            row("train", "GPU, batch 128", "speedup_ltlib_vs_lift", float("nan"), "x", "not measured")]
    return pd.DataFrame(rows).assign(device="cpu", git_sha="abc", timestamp="t", versions="{}")


def test_inputs_estimates_and_view_come_from_the_bench_rows():
    table = bench_table()
    assert perf.full_scale_inputs(table) == {"gflops": 35.4, "loader_rate": 240.0, "saved_mib": 108.0}
    estimates = perf.full_scale_table(table)
    assert set(estimates["dataset"]) == {"imagenet_lt", "places_lt", "inat2018"}
    # Loading time scales inversely with the measured decode rate wherever loading bounds a stage.
    slower = perf.full_scale_table(bench_table(rate=120.0))
    both = estimates.merge(slower, on=["dataset", "stage", "quantity"], suffixes=("", "_slow"))
    assert (both["value_slow"] >= both["value"]).all() and (both["value_slow"] > both["value"]).any()
    view = perf.benchmark_view(table)
    assert "versions" not in view and view["value"].iloc[-1] == "not measured"


def test_missing_measurements_give_a_note_not_an_error():
    partial = bench_table().iloc[:1]
    inputs = perf.full_scale_inputs(partial)
    assert inputs["gflops"] == 35.4 and math.isnan(inputs["loader_rate"])
    assert "make bench" in perf.full_scale_table(partial)["note"].item()
    nothing = perf.benchmark_table(directory=perf.BENCHMARK_DIR / "does-not-exist")
    assert math.isnan(perf.full_scale_inputs(nothing)["gflops"])


def test_provenance_is_shown_once_per_device_and_revision():
    table = pd.concat([bench_table(), bench_table().assign(device="gpu", git_sha="0123456789abcdef")])
    provenance = perf.benchmark_provenance(table)
    assert list(provenance["rows"]) == [4, 4] and set(provenance["git_sha"]) == {"abc", "0123456789ab"}
    assert list(perf.benchmark_view(table).columns) == ["benchmark", "case", "metric", "value", "unit", "note"]


def test_profile_comparison_splits_each_build_into_arithmetic_and_the_rest(tmp_path):
    import pandas as pd

    from ltlib.book.perf import profile_comparison

    table = pd.DataFrame({"phase": ["fine-tuning: forward/backward", "evaluation", "notebook"],
                          "wall_s": [60.0, 20.0, 20.0], "cpu_s": [120.0, 40.0, 0.0], "share": [0.6, 0.2, 0.2],
                          "cores_busy": [2.0, 2.0, 0.0]})
    (tmp_path / "a").mkdir()
    table.to_csv(tmp_path / "a" / "profile.csv", index=False)
    out = profile_comparison({"a": tmp_path / "a", "missing": tmp_path / "b"})
    assert list(out["build"]) == ["a"]  # a profile not committed is left out, not an error
    row = out.iloc[0]
    assert (row.wall_s, row.arithmetic_percent, row.outside_percent, row.cores_busy) == (100.0, 80.0, 20.0, 1.6)


def test_rebuilds_are_timed_in_order_and_stop_at_the_first_failure(tmp_path, monkeypatch):
    import sys

    from ltlib.bench.rebuild import COLUMNS, main, time_rebuilds
    from ltlib.book.perf import rebuild_times

    ok = [sys.executable, "-c", "import sys; sys.exit(0)"]
    fail = [sys.executable, "-c", "import sys; sys.exit(3)"]
    table = time_rebuilds(ok)  # the make arguments land in the child's argv, unused
    assert list(table.columns) == list(COLUMNS) and list(table.returncode) == [0, 0]
    assert table.command.iloc[0].endswith("book FORCE=1") and (table.seconds >= 0).all()
    table = time_rebuilds(fail, rebuilds=(("first", ("a",)), ("second", ("b",))))
    assert list(table.build) == ["first"] and table.returncode.iloc[0] == 3  # stopped at the failure
    script = tmp_path / "fail.py"
    script.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.chdir(tmp_path)
    assert main(["--out", "rebuilds.csv", "--make", f"{sys.executable} {script}"]) == 1  # a failure fails it
    shown = rebuild_times(tmp_path)
    assert list(shown.build) == ["warm caches, every notebook executed again"] and shown.returncode.iloc[0] == 3
    assert list(rebuild_times(tmp_path / "nothing").columns) == ["note"]
