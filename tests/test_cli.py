"""The command line (issues 2 and 5): ``train`` / ``adjust`` on a JPEG fixture with random-weight ViT-B/16s, a
2-process gloo ``torchrun`` run equal to a single-process one, ``validate-manifest`` on user train lists,
``reproduce --dry-run``, ``bench``; bad parameters, missing weights and bad manifests exit with code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tolerances import CLOSED_ABS, sgd_trajectory

from ltlib.bench.suite import BENCH_COLUMNS, bench_book
from ltlib.cache import load_split
from ltlib.checkpoint import CHECKPOINT_NAME
from ltlib.cli import main, parse_overrides
from ltlib.data import MANIFEST_ROOT, make_fixture_dataset, read_classnames
from ltlib.errors import ConfigError
from ltlib.runs import find_runs

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
SMALL = ["epochs=1", "batch_size=2", "micro_batch_size=1", "max_steps=2", "num_workers=0", "eval_batch_size=8",
         "checkpoint_every=0", "log_every=1"]


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m ltlib …`` in a fresh process (offline, this checkout first on the path)."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=900)


def train_args(fixture, backbone: str, method: str, runs: str = "runs") -> list[str]:
    return ["train", "--dataset", str(fixture.config), "--data-root", str(fixture.root), "--backbone", backbone,
            "--random-init", "--method", method, "--runs-root", runs, "--no-progress", "--set", *SMALL]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def fixture(workdir):
    return make_fixture_dataset(workdir / "data", num_classes=2, train_counts=(2, 1), val_per_class=1,
                                test_per_class=1, image_size=(40, 32))


@pytest.fixture(scope="module")
def stage1(fixture, workdir):
    """Zero-shot and LA for clip and LA for openclip (random weights); the LA clip run in a real process."""
    cwd = Path.cwd()
    os.chdir(workdir)
    try:
        assert main(train_args(fixture, "clip", "zeroshot")) == 0
        assert main(train_args(fixture, "openclip", "LA")) == 0
    finally:
        os.chdir(cwd)
    done = run_cli("-m", "ltlib", *train_args(fixture, "clip", "LA"), cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return find_runs(workdir / "runs", "fixture")


# --------------------------------------------------------------------------- train and adjust
def test_train_records_random_backbones_under_their_own_names(stage1):
    assert stage1[["backbone", "method"]].values.tolist() == [["clip-random", "LA"], ["clip-random", "zeroshot"],
                                                              ["openclip-random", "LA"]]
    a, b = (load_split(stage1["run_dir"][i], "test").logits for i in (0, 2))
    assert a.shape == (2, 2) and not np.allclose(a, b, rtol=0, atol=CLOSED_ABS)  # two different random ViT-B/16s


def test_adjust_combines_the_runs_and_finds_the_zero_shot_prior(stage1, workdir, capsys):
    la = [str(p) for p in stage1[stage1["method"] == "LA"]["run_dir"]]
    # P-groups need a zero-shot run of every backbone (their P̂_P's geometric mean); openclip has none here.
    assert main(["adjust", "--runs", *la, "--out", str(workdir / "no-prior")]) == 0
    assert "P-groups skipped" in capsys.readouterr().out
    assert set(pd.read_csv(workdir / "no-prior" / "stage2.csv")["p_group"]) == {"all"}
    zeroshot = stage1[stage1["method"] == "zeroshot"]["run_dir"].iloc[0]
    assert main(["adjust", "--runs", *la, "--prior", str(zeroshot), "--out", str(workdir / "stage2")]) == 0
    out = capsys.readouterr().out
    assert "clip-random+openclip-random" in out and "P-few" in out
    record = json.loads((workdir / "stage2" / "stage2.json").read_text())
    assert record["prior"]["runs"] == [str(zeroshot)] and record["prior"]["source"] == "clip-random"
    table = pd.read_csv(workdir / "stage2" / "stage2.csv")
    assert set(table["prior_source"]) == {"clip-random"}
    assert set(table["rule"]) == {"logit_sum", "prob_mean"}
    assert set(table["combination"]) == {"clip-random", "openclip-random", "clip-random+openclip-random"}
    z = [load_split(d, "test") for d in la]
    ensemble = table[(table["combination"] == "clip-random+openclip-random") & (table["rule"] == "logit_sum")
                     & (table["metric"] == "accuracy")]["value"].iloc[0]
    assert ensemble == pytest.approx(
        100 * np.mean((z[0].logits + z[1].logits).argmax(1) == z[0].targets), abs=CLOSED_ABS
    )


def test_torchrun_two_gloo_processes_match_one_process(stage1, fixture, workdir):
    """Data parallel on CPU (gloo): the same global batches, so the same model up to floating point."""
    done = run_cli(
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ltlib",
        *train_args(fixture, "clip", "LA", runs="runs_ddp"),
        cwd=workdir,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    single = stage1[(stage1["backbone"] == "clip-random") & (stage1["method"] == "LA")]["run_dir"].iloc[0]
    parallel = workdir / "runs_ddp" / single.relative_to(workdir / "runs")
    for split in ("val", "test"):
        a, b = load_split(single, split), load_split(parallel, split)
        assert np.array_equal(a.targets, b.targets)
        # Not worst case (γ_n per layer through the ViT would be vacuous): the parameters below agree to a few
        # ulps, and rounding through 12 blocks grows like √n·u per layer, ≈ 1e-5 on logits ≤ 25; a wrong
        # gradient split (one rank's half lost or doubled) moves them by orders more.
        assert np.allclose(a.logits, b.logits, rtol=0, atol=1e-4), np.abs(a.logits - b.logits).max()
    state = {d: torch.load(d / CHECKPOINT_NAME, weights_only=False)["model"] for d in (single, parallel)}
    steps = sum(json.loads(line)["kind"] == "step" for line in (single / "log.jsonl").read_text().splitlines())
    # gloo all-reduces the gradient (another summation order); the coupled updates are rounded at the scale
    # of the model's largest parameter, which sets the bound for every tensor (a zero-initialised bias of
    # size 1e-10 is not rounded at its own ulp).
    trained = torch.cat([t.flatten().float() for t in state[single].values() if t.is_floating_point()])
    for key, tensor in state[single].items():
        assert torch.allclose(tensor, state[parallel][key], rtol=0, atol=sgd_trajectory(trained, steps)), key
    log = [json.loads(line) for line in (parallel / "log.jsonl").read_text().splitlines()]
    assert log[0]["world_size"] == 2


# --------------------------------------------------------------------------- errors: exit code 2
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "learning_rate=0.1"], "unknown key"),
        (["--set", "batch_size=0"], "batch_size=0"),
        (["--set", "epochs"], "expected KEY=VALUE"),
        (["--val-source", "nope"], "val_source='nope'"),
        (["--method", "GLA-Train", "--runs-root", "{workdir}/empty"], "GLA-Train needs"),
    ],
)
def test_bad_training_parameters_exit_2(fixture, workdir, capsys, extra, message):
    args = train_args(fixture, "clip", "LA") + [a.format(workdir=workdir) for a in extra]
    assert main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--backbone", "nope"], "unknown backbone 'nope'"),
        (["--weights", "/no/such/weights.safetensors"], "weights file not found"),
        (["--dataset", "imagenet_lt"], "ImageNet_LT_train.txt"),
    ],
)
def test_bad_inputs_exit_2(fixture, workdir, capsys, args, message):
    base = {"--dataset": str(fixture.config), "--data-root": str(fixture.root), "--backbone": "clip"}
    base.update(dict(zip(args[::2], args[1::2])))
    assert main(["train", *[x for kv in base.items() for x in kv], "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_offline_hub_without_weights_exits_2_in_a_real_process(fixture, workdir, tmp_path):
    done = run_cli(
        "-m",
        "ltlib",
        "train",
        "--dataset",
        str(fixture.config),
        "--data-root",
        str(fixture.root),
        "--backbone",
        "openclip",
        cwd=workdir,
        env={"HF_HOME": str(tmp_path)},
    )
    assert done.returncode == 2
    assert "error:" in done.stderr and "offline" in done.stderr and "--weights PATH" in done.stderr
    assert "Traceback" not in done.stderr


def test_adjust_refuses_what_it_cannot_combine(stage1, workdir, capsys):
    assert main(["adjust", "--runs", str(workdir)]) == 2
    assert "not a complete stage-1 run" in capsys.readouterr().err
    la = [str(p) for p in stage1[stage1["method"] == "LA"]["run_dir"]]
    assert main(["adjust", "--runs", *la, "--weights", "1", "--no-prior", "--out", str(workdir / "x")]) == 2
    assert "1 values for 2 runs" in capsys.readouterr().err
    assert main(["adjust", "--runs", *la, "--rule", "vote", "--no-prior"]) == 2
    assert "invalid rules" in capsys.readouterr().err


# --------------------------------------------------------------------------- validate-manifest
@pytest.fixture(scope="module")
def imagenet_train_list() -> list[str]:
    """A stand-in for ImageNet_LT_train.txt with the published shape: 115,846 lines, 5 to 1,280 per
    class, 385 / 479 / 136 many / medium / few classes, labels in the wnid order of the folders."""
    wnids = read_classnames(MANIFEST_ROOT / "ImageNet_LT" / "class_folders.txt")
    counts = [1280] + [167] * 352 + [166] * 32 + [100] * 479 + [5] + [19] * 135
    assert sum(counts) == 115_846
    return [f"train/{wnids[j]}/{wnids[j]}_{k}.JPEG {j}" for j, n in enumerate(counts) for k in range(n)]


def write_list(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def relabel(lines: list[str], mapping: dict[int, int]) -> list[str]:
    out = []
    for line in lines:
        path, label = line.rsplit(" ", 1)
        out.append(f"{path} {mapping.get(int(label), int(label))}")
    return out


def test_validate_manifest_accepts_and_pins_a_good_list(imagenet_train_list, tmp_path, capsys):
    good = write_list(tmp_path / "ImageNet_LT_train.txt", imagenet_train_list)
    args = ["validate-manifest", "--dataset", "imagenet_lt", "--file", str(good), "--cache-dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "115846 lines, 1000 classes, 5-1280 per class, many/medium/few 385/479/136" in out
    assert "recorded on first use" in out and "byte-identical to LIFT's copy: no" in out
    assert main(args) == 0 and "matches the SHA-256 recorded" in capsys.readouterr().out
    write_list(good, imagenet_train_list[1:] + imagenet_train_list[:1])  # same lines, another order
    assert main(args) == 2 and "differs from" in capsys.readouterr().err


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncated", "line count 115746, expected 115846"),
        ("reordered", r"line 1: 'train/n01440764/n01440764_0.JPEG' has label 1"),
        ("label_out_of_range", "label 1000 outside [0, 1000)"),
        ("class_missing", "1 of 1000 classes have no line (first: label 999)"),
    ],
)
def test_validate_manifest_names_the_damage(imagenet_train_list, tmp_path, capsys, damage, message):
    lines = {
        "truncated": lambda x: x[:-100],
        "reordered": lambda x: relabel(x, {0: 1, 1: 0}),
        "label_out_of_range": lambda x: x[:-1] + [x[-1].rsplit(" ", 1)[0] + " 1000"],
        "class_missing": lambda x: relabel(x, {999: 998}),
    }[damage](imagenet_train_list)
    bad = write_list(tmp_path / "ImageNet_LT_train.txt", lines)
    args = ["validate-manifest", "--dataset", "imagenet_lt", "--file", str(bad), "--cache-dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and message in err  # after the command's banner line
    assert "The standard file is ImageNet_LT_train.txt" in err  # and where to get it


# --------------------------------------------------------------------------- reproduce, notebooks, bench
def test_reproduce_dry_run_lists_the_stages_and_fails_early_on_missing_weights(fixture, tmp_path, capsys):
    weights = tmp_path / "weights"
    (weights / "openclip").mkdir(parents=True)
    (weights / "clip.safetensors").write_bytes(b"")
    (weights / "openclip" / "open_clip_model.safetensors").write_bytes(b"")
    base = [
        "reproduce",
        "--dataset",
        str(fixture.config),
        "--data-root",
        str(fixture.root),
        "--weights-dir",
        str(weights),
        "--dry-run",
    ]
    assert main(base) == 2  # the default backbones include metaclip
    err = capsys.readouterr().err
    assert "backbone 'metaclip'" in err and "metaclip.safetensors" in err and "metaclip_400m" in err
    assert main(base + ["--backbones", "clip", "openclip", "--nproc", "2", "--methods", "LA", "CE"]) == 0
    commands = capsys.readouterr().out.strip().splitlines()
    book = commands[-2:]  # the notebooks into the reproduction's own site, then its HTML
    commands = commands[:-1]
    order = [(c.split("--backbone ")[1].split()[0], c.split("--method ")[1].split()[0]) for c in commands[:-1]]
    assert order == [
        ("clip", "zeroshot"),
        ("clip", "LA"),
        ("clip", "CE"),
        ("openclip", "zeroshot"),
        ("openclip", "LA"),
        ("openclip", "CE"),
    ]
    assert all("torch.distributed.run" in c and "--nproc_per_node=2" in c for c in commands[:-1])
    assert f"--weights {weights / 'openclip' / 'open_clip_model.safetensors'}" in commands[4]
    assert "run-notebooks --setting full --set dataset=fixture runs_root=runs" in book[0]
    assert book[0].endswith(f"--out {Path('results/full/fixture/site/book/executed')}")
    assert book[1].endswith("jupyter-book build results/full/fixture/site -n --keep-going")


def test_reproduce_needs_the_train_list_where_it_is_not_shipped(tmp_path, capsys):
    assert main(["reproduce", "--dataset", "imagenet_lt", "--data-root", str(tmp_path), "--dry-run"]) == 2
    assert "needs its training list" in capsys.readouterr().err


def test_overrides_parse_as_yaml_scalars():
    assert parse_overrides(["epochs=2", "lr=0.5", "tte=false", "dataset=places_lt", "template=", "x = 1"]) == {
        "epochs": 2,
        "lr": 0.5,
        "tte": False,
        "dataset": "places_lt",
        "template": None,
        "x": 1,
    }
    with pytest.raises(ConfigError, match="'=3'"):
        parse_overrides(["=3"])


def test_bench_writes_a_tidy_table_and_markdown(tmp_path, capsys):
    assert main(["bench", "--quick", "--only", "prior", "book", "--out", str(tmp_path)]) == 0
    table = pd.read_csv(tmp_path / "bench.csv")
    assert list(table.columns) == list(BENCH_COLUMNS)
    assert set(table["benchmark"]) == {"environment", "prior", "book"}
    gaps = table[table["metric"] == "objective_gap_reference_minus_exact"]["value"]
    assert len(gaps) == 2 and (gaps >= 0).all()
    assert (tmp_path / "bench.md").read_text().startswith("Measured on ")
    assert main(["bench", "--only", "nope", "--out", str(tmp_path)]) == 2


def test_book_timing_hook_reads_the_runner_timings(tmp_path):
    timings = tmp_path / "timings.csv"
    timings.write_text(
        "notebook,status,seconds,parameters,git_sha\na,executed,3.5,x,y\nb,up-to-date,9.0,x,y\nc,executed,1.5,x,y\n"
    )
    rows = bench_book({"default": timings, "4x": tmp_path / "missing.csv"})
    total = {r["case"]: r["value"] for r in rows if r["metric"] == "seconds_notebooks_total"}
    default = "world default (40 classes, 24,000 corpus images per model, 4 models)"  # the world's size, named
    assert total[default] == pytest.approx(5.0, abs=CLOSED_ABS) and np.isnan(total["world 4x"])
