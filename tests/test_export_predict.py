"""Use the result (issue 13): ``export`` writes a trained run's adapters + head as safetensors with a JSON card,
and ``predict`` applies one exported model, or the backdoor adjustment over several runs, to a folder of
images; the predictions equal those the runs cached for the same images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from ltlib.cache import load_split
from ltlib.checkpoint import CHECKPOINT_NAME
from ltlib.cli import main
from ltlib.data import make_image_folder
from ltlib.runs import find_runs, load_run
from ltlib.storage import read_json

SMALL = ["epochs=1", "batch_size=2", "micro_batch_size=1", "max_steps=2", "num_workers=0", "checkpoint_every=0"]
# Cached and recomputed float32 logits (cosine scale 25) differ only by summation order across batch sizes,
# well below 1e-4 in probability; the CSV's probabilities are compared at that tolerance.
PROB_TOL = 1e-4


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("use")
    root = make_image_folder(work / "photos", class_counts=(6, 3, 2), test_per_class=2)
    cwd = Path.cwd()
    os.chdir(work)
    try:
        for method, seed in (("zeroshot", 0), ("LA", 0), ("LA", 1)):
            assert main(["train", "--dataset", f"imagefolder:{root}", "--backbone", "tiny", "--random-init",
                         "--device", "cpu", "--no-progress", "--method", method, "--seed", str(seed),
                         "--set", *SMALL]) == 0
    finally:
        os.chdir(cwd)
    runs = find_runs(work / "runs")
    la = sorted(runs[runs["method"] == "LA"]["run_dir"], key=lambda d: load_run(d)["seed"])
    zeroshot = runs[runs["method"] == "zeroshot"]["run_dir"].iloc[0]
    return {"work": work, "test_images": root / "test", "la": la, "zeroshot": zeroshot}


def cached_probs(run_dirs) -> np.ndarray:
    logits = sum(torch.from_numpy(load_split(d, "test").logits).double() for d in run_dirs)
    return torch.softmax(logits, dim=1).numpy()


def test_export_holds_exactly_the_trained_tensors_and_a_card(trained):
    out = trained["work"] / "export"
    assert main(["export", "--run", str(trained["la"][0]), "--out", str(out)]) == 0
    tensors = load_file(str(out / "model.safetensors"))
    checkpoint = torch.load(trained["la"][0] / CHECKPOINT_NAME, weights_only=True)["model"]
    assert set(tensors) == set(checkpoint) and all(k.startswith(("adapters.", "head.")) for k in tensors)
    assert all(torch.equal(tensors[k], checkpoint[k]) for k in tensors)
    card = read_json(out / "card.json")
    assert (card["backbone"], card["random_init"], card["method"]) == ("tiny", True, "LA")
    assert card["classnames"] == ["class 0", "class 1", "class 2"] and card["recipe"]["tte"] is True
    assert card["accuracy"] == load_run(trained["la"][0])["accuracy"]


def test_predict_with_the_export_reproduces_the_cached_test_predictions(trained):
    out = trained["work"] / "export"
    if not (out / "card.json").is_file():
        main(["export", "--run", str(trained["la"][0]), "--out", str(out)])
    csv = trained["work"] / "one.csv"
    assert main(["predict", "--models", str(out), "--images", str(trained["test_images"]), "--out", str(csv),
                 "--top-k", "2", "--device", "cpu"]) == 0
    table = pd.read_csv(csv)
    assert list(table.columns) == ["path", "prediction", "score", "top_k", "top_k_scores"]
    assert table["path"].tolist()[:2] == ["class 0/class 0 000.jpg", "class 0/class 0 001.jpg"]
    probs = cached_probs(trained["la"][:1])  # the run's test split is the same six images in the same order
    names = np.array(["class 0", "class 1", "class 2"])
    assert table["prediction"].tolist() == names[probs.argmax(1)].tolist()
    assert np.allclose(table["score"], probs.max(1), atol=PROB_TOL)
    assert all(len(row.split(";")) == 2 for row in table["top_k"])


def test_predict_combines_several_runs_by_the_backdoor_adjustment(trained):
    csv = trained["work"] / "two.csv"
    assert main(["predict", "--models", *map(str, trained["la"]), "--images", str(trained["test_images"]),
                 "--out", str(csv), "--device", "cpu"]) == 0
    table = pd.read_csv(csv)
    probs = cached_probs(trained["la"])  # logit_sum: softmax of the summed logits
    assert np.allclose(table["score"], probs.max(1), atol=PROB_TOL)
    single = cached_probs(trained["la"][:1])
    assert not np.allclose(single, probs, atol=PROB_TOL)  # the second model does change the scores


def test_a_zero_shot_run_cannot_be_exported_and_bad_options_exit_2(trained, capsys):
    assert main(["export", "--run", str(trained["zeroshot"]), "--out", str(trained["work"] / "zs")]) == 2
    assert "only a trained LIFT run" in capsys.readouterr().err
    assert main(["predict", "--models", str(trained["la"][0]), "--images", str(trained["work"] / "nowhere"),
                 "--out", "x.csv", "--device", "cpu"]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(["predict", "--models", str(trained["la"][0]), "--images", str(trained["test_images"]),
                 "--out", "x.csv", "--weights", "a.pt", "b.pt"]) == 2
