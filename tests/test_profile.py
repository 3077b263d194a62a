"""The phase timer (ltlib.phases) and the profile summary (ltlib.bench.profile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from ltlib import phases
from ltlib.bench.profile import OTHER, attributed_wall, exclusive_cpu, main, profile_table, read_records
from ltlib.errors import ConfigError


@pytest.fixture
def record_file(tmp_path, monkeypatch):
    path = tmp_path / "phases.jsonl"
    monkeypatch.setenv(phases.FILE_VARIABLE, str(path))
    monkeypatch.delenv(phases.PARENT_VARIABLE, raising=False)
    return path


def test_disabled_timer_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(phases.FILE_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    with phases.phase("fine-tuning"), phases.phase_part("data"):
        pass
    assert not phases.enabled() and list(tmp_path.iterdir()) == []


def test_enabled_timer_writes_nested_records_with_parts(record_file):
    with phases.phase("outer", detail="nb"):
        with phases.phase("inner"):
            for _ in range(3):
                with phases.phase_part("data"):
                    sum(range(1000))
    inner, outer = read_records(record_file)  # the inner phase ends first
    assert (inner["phase"], outer["phase"], outer["detail"]) == ("inner", "outer", "nb")
    assert inner["parent"] == outer["id"] and outer["parent"] is None
    assert inner["pid"] == outer["pid"] == os.getpid()
    assert inner["parts"]["data"][2] == 3 and outer["parts"] == {}
    assert 0 <= inner["parts"]["data"][0] <= inner["wall"] <= outer["wall"]
    assert outer["start"] <= inner["start"] and inner["cpu"] >= 0
    assert phases.PARENT_VARIABLE not in os.environ  # restored after the outer phase


def test_a_record_is_written_when_the_block_raises(record_file):
    with pytest.raises(ValueError), phases.phase("failing"):
        raise ValueError("boom")
    assert [r["phase"] for r in read_records(record_file)] == ["failing"]


def test_child_process_links_to_the_parent_phase_and_records_start_up(record_file):
    code = "from ltlib import phases\nwith phases.phase('child'): pass"
    with phases.phase("notebook"):
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    records = {r["phase"]: r for r in read_records(record_file)}
    assert set(records) == {"notebook", "child", phases.KERNEL_STARTUP}  # a direct child of this process
    assert records["child"]["parent"] == records[phases.KERNEL_STARTUP]["parent"] == records["notebook"]["id"]
    assert records["child"]["pid"] != records["notebook"]["pid"]
    # /proc gives the creation time to a clock tick (10 ms), through uptime read a moment apart from time.time()
    assert records["notebook"]["start"] - 1 <= records[phases.KERNEL_STARTUP]["start"] <= records["child"]["start"]


def test_a_grandchild_records_a_worker_start_up(record_file):
    inner = "from ltlib import phases"
    code = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {inner!r}], check=True)"
    with phases.phase("notebook"):
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert [r["phase"] for r in read_records(record_file)] == [phases.WORKER_STARTUP, "notebook"]


def _record(id_, phase, start, wall, cpu, pid=1, parent=None, parts=None):
    return {"id": id_, "phase": phase, "start": start, "wall": wall, "cpu": cpu, "pid": pid, "parent": parent,
            "parts": parts or {}}


# A build of 100 s: a notebook (0-80 s) whose kernel (pid 2) fine-tunes 10-50 s (data 10 s of it) while a
# worker (pid 3) evaluates 30-70 s; nothing runs 80-90 s; the HTML build runs 90-100 s.
BUILD = [_record("1:0", "notebook", 0, 80, 1),
         _record("2:0", "fine-tuning", 10, 40, 40, pid=2, parent="1:0", parts={"data": [10, 8, 5]}),
         _record("3:0", "evaluation", 30, 40, 40, pid=3, parent="1:0"),
         _record("1:1", "HTML build", 90, 10, 9)]


def test_attribution_splits_each_instant_among_running_leaf_phases():
    wall, idle = attributed_wall(BUILD)
    # fine-tuning alone 10-30, shared with evaluation 30-50; evaluation alone 50-70; notebook 0-10 and 70-80
    assert wall == pytest.approx({"1:0": 20, "2:0": 30, "3:0": 30, "1:1": 10})
    assert idle == pytest.approx(10)


def test_profile_table_partitions_the_wall_time():
    table = profile_table(BUILD).set_index("phase")
    assert table["share"].sum() == pytest.approx(1.0, abs=1e-12)
    assert table["wall_s"].sum() == pytest.approx(100)
    # the part takes its fraction (10 of 40 s) of fine-tuning's 30 attributed seconds
    assert table.loc["fine-tuning: data", "wall_s"] == pytest.approx(7.5)
    assert table.loc["fine-tuning (rest)", "wall_s"] == pytest.approx(22.5)
    assert table.loc["fine-tuning (rest)", "cpu_s"] == pytest.approx(32)  # 40 CPU s less the part's 8
    assert table.loc["evaluation", "cores_busy"] == pytest.approx(40 / 30)
    assert table.loc[OTHER, "wall_s"] == pytest.approx(10)


def test_exclusive_cpu_subtracts_same_process_children_only():
    records = [_record("1:0", "outer", 0, 10, 10), _record("1:1", "inner", 1, 5, 4, parent="1:0"),
               _record("2:0", "child", 1, 5, 5, pid=2, parent="1:0")]
    assert exclusive_cpu(records) == pytest.approx({"1:0": 6, "1:1": 4, "2:0": 5})


def test_malformed_records_name_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "phases.jsonl"
    path.write_text(json.dumps(BUILD[0]) + "\n" + json.dumps({**BUILD[1], "wall": "x"}) + "\n")
    with pytest.raises(ConfigError, match=r"phases.jsonl:2: field 'wall'"):
        read_records(path)
    path.write_text("{not json\n")
    with pytest.raises(SystemExit) as exit_info:
        main([str(path)])
    assert exit_info.value.code == 2 and "phases.jsonl:1" in capsys.readouterr().err


def test_command_line_writes_the_tables(tmp_path, capsys):
    path = tmp_path / "phases.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in BUILD))
    assert main([str(path), "--out", str(tmp_path / "out")]) == 0
    assert "| HTML build | 10.0 | 9.0 | 10.0 % | 0.90 |" in capsys.readouterr().out
    assert (tmp_path / "out" / "profile.csv").is_file() and (tmp_path / "out" / "profile.md").is_file()


def test_run_command_times_a_subprocess(record_file):
    status = phases.run_command("HTML build", [sys.executable, "-c", "import sys; sys.exit(3)"])
    (record,) = read_records(record_file)
    assert status == 3 and record["phase"] == "HTML build" and record["wall"] > 0


def test_the_performance_page_reads_a_committed_profile(tmp_path):
    from ltlib.bench.profile import profile_table
    from ltlib.book.perf import build_profile

    assert "note" in build_profile(tmp_path).columns
    profile_table(BUILD).to_csv(tmp_path / "profile.csv", index=False)
    shown = build_profile(tmp_path).set_index("phase")
    assert shown["share_percent"].sum() == pytest.approx(100, abs=0.5)  # rounded to 0.1 per row
    assert shown.loc["HTML build", "cores_busy"] == 0.9


def test_notebook_table_sums_each_notebooks_phases_beside_the_runner(tmp_path):
    from ltlib.bench.profile import notebook_table

    records = [{**BUILD[0], "detail": "01_imbalance"}, *BUILD[1:]]
    timings = pd.DataFrame({"notebook": ["01_imbalance"], "status": ["executed"], "seconds": [80.2]})
    table = notebook_table(records, timings)
    row = table.loc["01_imbalance"]
    assert (row["fine-tuning"], row["evaluation"], row["notebook"]) == pytest.approx((30, 30, 20))
    assert row["total"] == pytest.approx(80) and row["runner_seconds"] == 80.2
    assert "HTML build" not in table.columns  # not inside a notebook
