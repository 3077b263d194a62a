"""Your own data from the command line (issue 13): ``imagefolder:ROOT`` and ``csv:FILE`` specs with derived
counts and paths with spaces; ``--d-thresholds`` / ``--p-fractions`` recorded by ``train`` and used by
``adjust``; a tiny random ViT trains on them in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ltlib.cli import main
from ltlib.data import make_image_folder
from ltlib.data.own import OwnDataOptions, load_own_dataset
from ltlib.errors import ConfigError
from ltlib.runs import find_runs, load_run
from ltlib.tasks import build_own_task

SMALL = ["epochs=1", "batch_size=2", "micro_batch_size=1", "max_steps=1", "num_workers=0", "checkpoint_every=0"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("own") / "my images", class_counts=(12, 5, 2))


def test_image_folder_counts_and_a_stratified_seeded_hold_out(folder):
    data = load_own_dataset(f"imagefolder:{folder}")
    assert data.classnames == ("class 0", "class 1", "class 2")
    # round(0.2 n) per class, at least one when n >= 2, never the last: 12 -> 2, 5 -> 1, 2 -> 1
    assert data.class_counts.tolist() == [10, 4, 1]
    assert np.bincount(data.splits["test"].labels).tolist() == [2, 1, 1]
    assert set(data.splits["train"].paths).isdisjoint(data.splits["test"].paths)
    assert data.splits["train"].paths[0].startswith("class 0/class 0 ")  # spaces kept
    again, other = load_own_dataset(f"imagefolder:{folder}"), load_own_dataset(
        f"imagefolder:{folder}", OwnDataOptions(seed=1))
    assert again.key == data.key and again.splits["test"].paths == data.splits["test"].paths
    assert other.key != data.key  # another hold-out is another dataset: runs are not shared


def test_split_folders_give_the_splits(tmp_path):
    root = make_image_folder(tmp_path / "split tree", class_counts=(4, 2), test_per_class=3)
    data = load_own_dataset(f"imagefolder:{root}")
    assert data.class_counts.tolist() == [4, 2] and len(data.splits["test"]) == 6 and "val" not in data.splits
    task = build_own_task(data)
    assert task.info["val_source"] == "train_subset" and len(task.eval_sets["val"]) == 4  # 2 per class
    image, label = task.eval_sets["test"][5]
    assert label == 1 and tuple(image.shape[-3:]) == (3, 224, 224)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_with_names_integers_and_folders(folder, tmp_path):
    images = sorted(str(p) for p in folder.rglob("*.jpg"))
    by_class = [[p for p in images if f"/class {c}/" in p] for c in range(3)]
    named = write_csv(tmp_path / "named.csv", ["path,label,split"] + [
        f"{p},{'apple' if c == 0 else 'pear'},{'test' if k == 0 else 'train'}"
        for c in (0, 1) for k, p in enumerate(by_class[c])])
    data = load_own_dataset(f"csv:{named}")
    assert data.classnames == ("apple", "pear") and data.class_counts.tolist() == [11, 4]
    assert len(data.splits["test"]) == 2
    indexed = write_csv(tmp_path / "indexed.csv", ["path,label"] + [f"{p},{c}" for c in range(3) for p in by_class[c]])
    assert load_own_dataset(f"csv:{indexed}").classnames == ("class 0", "class 1", "class 2")  # from the folders
    names = tmp_path / "names.txt"
    names.write_text("red\ngreen\nblue\n")
    data = load_own_dataset(f"csv:{indexed}", OwnDataOptions(classnames=str(names)))
    assert data.classnames == ("red", "green", "blue") and data.class_counts.tolist() == [10, 4, 1]


@pytest.mark.parametrize("rows, message", [
    (["file,label", "a.jpg,0"], r"bad.csv, line 1: expected a header"),
    (["path,label,split", "a.jpg,x,train", "b.jpg,y,holdout"], r"bad.csv, line 3: split 'holdout'"),
    (["path,label", "a.jpg,"], r"bad.csv, line 2: empty path or label"),
])
def test_bad_csv_rows_are_named(tmp_path, rows, message):
    with pytest.raises(ConfigError, match=message):
        load_own_dataset(f"csv:{write_csv(tmp_path / 'bad.csv', rows)}")


def test_train_and_adjust_on_an_image_folder_with_chosen_groups(folder, tmp_path, capsys):
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        common = ["train", "--dataset", f"imagefolder:{folder}", "--backbone", "tiny", "--random-init",
                  "--device", "cpu", "--no-progress", "--d-thresholds", "5", "2", "--p-fractions", "0.34", "0.33",
                  "--set", *SMALL]
        assert main([*common, "--method", "zeroshot"]) == 0
        assert main(common) == 0
        runs = find_runs("runs")
        la = runs[runs["method"] == "LA"]["run_dir"].iloc[0]
        assert load_run(la)["task_info"]["d_thresholds"] == [5, 2]
        assert load_run(la)["class_counts"] == [10, 4, 1]
        assert main(["adjust", "--runs", str(la), "--out", "stage2"]) == 0
    finally:
        os.chdir(cwd)
    assert "D-groups many n > 5, few n < 2" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "stage2" / "stage2.csv")
    sizes = table[(table["p_group"] == "all") & (table["d_group"] != "all")].groupby("d_group")["num_classes"].first()
    assert sizes.to_dict() == {"few": 1, "many": 1, "medium": 1}  # with the paper's 100 / 20 all three are few
    p_sizes = table[(table["d_group"] == "all") & (table["p_group"] != "all")].groupby("p_group")["num_classes"].first()
    assert p_sizes.to_dict() == {"few": 1, "many": 1, "medium": 1}  # round(0.34·3) = 1, round(0.67·3) = 2


def test_bad_group_options_and_a_missing_data_root_exit_2(folder, capsys):
    assert main(["train", "--dataset", f"imagefolder:{folder}", "--backbone", "tiny", "--random-init",
                 "--d-thresholds", "5", "20"]) == 2
    assert "few=20 must not exceed many=5" in capsys.readouterr().err
    assert main(["train", "--dataset", "places_lt", "--backbone", "tiny", "--random-init"]) == 2
    assert "--data-root is required" in capsys.readouterr().err
