"""Atomic writes keep the old file on failure and give new files the usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from ltlib.storage import append_jsonl, atomic_path, read_json, write_json, write_text


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
