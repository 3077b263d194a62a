"""Atomic writes keep the old file on failure and give new files the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from ltlib.storage import append_jsonl, atomic_path, read_json, read_table, write_json, write_text


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "result.json"
    write_json(target, {"value": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert read_json(target) == {"value": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path):
    path = write_text(tmp_path / "a.txt", "x")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_jsonl_appends_one_record_per_line(tmp_path):
    import numpy as np
    log = tmp_path / "log.jsonl"
    append_jsonl(log, {"a": np.float32(1.5)})
    append_jsonl(log, {"b": [1, 2]})
    assert log.read_text().splitlines() == ['{"a": 1.5}', '{"b": [1, 2]}']


def test_identifiers_that_look_like_numbers_are_read_back_as_text(tmp_path):
    # A 12-digit hex hash with one "e" parses as a float (9.1e12837 = inf), one of all digits as an integer;
    # CI once failed on a stage-2 config hash of exactly this shape.
    path = write_text(tmp_path / "t.csv", "value,config_hash,git_sha,parameters\n1.5,908682e12832,0123456789ab,\n"
                                          "2.5,000000000012,abc,1e5\n")
    table = read_table(path)
    assert list(table["config_hash"]) == ["908682e12832", "000000000012"]
    assert list(table["git_sha"]) == ["0123456789ab", "abc"] and list(table["parameters"]) == ["", "1e5"]
    assert table["value"].dtype.kind == "f"
