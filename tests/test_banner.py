"""Say what runs where (issue 13): every command first prints device, precision, world size and output folder;
an explicit ``--device cuda`` without a usable CUDA device is refused (exit 2, one line), never run on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ltlib.cli import main, resolve_device
from ltlib.data import make_image_folder
from ltlib.errors import ConfigError
from ltlib.paths import manifests_dir


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_the_default_device_is_cuda_when_usable_and_cpu_otherwise(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device(None) == "cuda" and resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(None) == "cpu"
    with pytest.raises(ConfigError, match="--device 'gpu': expected cpu, cuda or cuda:N"):
        resolve_device("gpu")


@pytest.mark.parametrize("command", [
    ["train", "--dataset", "places_lt", "--data-root", "/nowhere", "--backbone", "tiny", "--random-init"],
    ["predict", "--models", "m", "--images", "i", "--out", "p.csv"],
])
def test_an_explicit_cuda_without_cuda_is_refused_before_any_work(no_cuda, command, capsys):
    assert main([*command, "--device", "cuda"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: --device cuda: CUDA is not available here")
    assert "refusing to fall back to the CPU" in captured.err


def test_a_command_prints_the_banner_first(no_cuda, tmp_path, capsys):
    listed = manifests_dir() / "Places_LT" / "Places_LT_val.txt.gz"
    assert main(["validate-manifest", "--dataset", "places_lt", "--file", str(listed), "--split", "val",
                 "--cache-dir", str(tmp_path)]) == 0
    first = capsys.readouterr().err.splitlines()[0]
    assert first == (f"[ltlib validate-manifest] device cpu (no usable CUDA device) | precision fp32 | world size 1 "
                     f"| output {tmp_path}")


def test_train_states_device_precision_world_size_and_run_folder(no_cuda, tmp_path, capsys, monkeypatch):
    root = make_image_folder(tmp_path / "images", class_counts=(2, 2))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(os.environ, "WORLD_SIZE", "1")
    assert main(["train", "--dataset", f"imagefolder:{root}", "--backbone", "tiny", "--random-init", "--method",
                 "zeroshot", "--no-progress", "--set", "num_workers=0"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[ltlib")]
    assert err[0] == ("[ltlib train] device cpu (no usable CUDA device) | precision fp32 training, fp32 evaluation | "
                      "world size 1 | output runs")
    run_folder = Path(err[1].removeprefix("[ltlib train] run folder "))
    assert (tmp_path / run_folder / "run.json").is_file()


def test_pre_training_reports_each_epoch_with_the_time_left(capfd, monkeypatch):
    from ltlib.miniworld import load_world_config
    from ltlib.miniworld.pretrain import _report_epoch
    from ltlib.miniworld.world import World

    _report_epoch(2, 5, 1.23456, 10.0)
    err = capfd.readouterr().err
    assert "epoch 2/5: loss 1.235, 10 s elapsed, about 15 s left" in err  # 5 s per epoch, 3 epochs to go
    config = load_world_config("smoke")
    monkeypatch.setenv("LTLIB_PROGRESS", "1")  # as the notebook runner sets it for its kernels
    assert World(config).progress is True and World(config, progress=False).progress is False
    monkeypatch.setenv("LTLIB_PROGRESS", "0")
    assert World(config).progress is False
