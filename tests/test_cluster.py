"""Clusters on the existing engine (issue 13): two torchrun "nodes" on the loopback (gloo, the rendezvous
flags a multi-node launch uses), two tasks started the way Slurm's srun starts them, both equal to a
single-process run; the stop flag is agreed across ranks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.multiprocessing as mp

from ltlib.cache import load_split
from ltlib.data import make_image_folder
from ltlib.distributed import slurm_environment
from ltlib.errors import ConfigError
from ltlib.runs import find_runs

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
SMALL = ["epochs=1", "batch_size=4", "micro_batch_size=2", "max_steps=2", "num_workers=0", "checkpoint_every=0",
         "log_every=1"]
# Data parallel with the same global batches (ltlib.engine): the same model up to the order of floating-point
# sums in the gradient all-reduce, far below 1e-4 in logits of magnitude <= 25 (the cosine scale).
LOGIT_TOL = 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm_variables_map_to_torchrun_ones():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "MASTER_ADDR": "node1",
           "MASTER_PORT": "29500"}
    assert slurm_environment(env) == {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}
    assert slurm_environment({**env, "RANK": "3"}) == {}  # torchrun inside an allocation: its variables win
    assert slurm_environment({**env, "SLURM_NTASKS": "1"}) == {}  # one task: not distributed
    with pytest.raises(ConfigError, match="MASTER_ADDR not set"):
        slurm_environment({k: v for k, v in env.items() if k != "MASTER_ADDR"})


def _any_rank_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    from ltlib.distributed import DistContext, any_rank

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    ctx = DistContext(rank=rank, world_size=2)
    agreed = [any_rank(rank == 1, ctx), any_rank(False, ctx)]  # a signal that reached rank 1 only; none
    Path(out, f"rank{rank}.json").write_text(json.dumps(agreed))
    dist.destroy_process_group()


def test_a_stop_request_on_one_rank_stops_every_rank(tmp_path):
    mp.spawn(_any_rank_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [[True, False], [True, False]]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("cluster") / "images", class_counts=(5, 3, 2))


def train_args(images: Path, runs: Path) -> list[str]:
    return ["-m", "ltlib", "train", "--dataset", f"imagefolder:{images}", "--backbone", "tiny", "--random-init",
            "--device", "cpu", "--no-progress", "--runs-root", str(runs), "--set", *SMALL]


def launch(args: list[str], cwd: Path, extra_env: list[dict]) -> None:
    """Start one process per environment, all at once, and require each to succeed."""
    base = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, *args], cwd=cwd, env={**base, **extra}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for extra in extra_env]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out[-3000:]


@pytest.fixture(scope="module")
def single(images, tmp_path_factory) -> Path:
    """The reference: one process (this one, to save a start-up)."""
    from ltlib.cli import main

    work = tmp_path_factory.mktemp("single")
    assert main(train_args(images, work / "runs")[2:]) == 0
    return find_runs(work / "runs")["run_dir"].iloc[0]


def assert_same_run(single: Path, parallel_root: Path) -> None:
    parallel = find_runs(parallel_root)["run_dir"].iloc[0]
    assert parallel.relative_to(parallel_root) == single.relative_to(single.parents[3])
    for split in ("val", "test"):
        a, b = load_split(single, split), load_split(parallel, split)
        assert np.array_equal(a.targets, b.targets)
        assert np.allclose(a.logits, b.logits, atol=LOGIT_TOL), np.abs(a.logits - b.logits).max()
    log = [json.loads(line) for line in (parallel / "log.jsonl").read_text().splitlines()]
    assert log[0]["world_size"] == 2


def test_two_torchrun_nodes_on_the_loopback_match_one_process(images, single, tmp_path):
    port = free_port()
    torchrun = ["-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--master-addr",
                "127.0.0.1", "--master-port", str(port)]
    nodes = [[*torchrun, "--node-rank", str(rank), *train_args(images, tmp_path / "runs")] for rank in (0, 1)]
    base = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, *node], cwd=tmp_path, env=base, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for node in nodes]
    for p in procs:
        out = p.communicate(timeout=600)[0]
        assert p.returncode == 0, out[-3000:]
    assert_same_run(single, tmp_path / "runs")


def test_two_tasks_started_as_srun_starts_them_match_one_process(images, single, tmp_path):
    slurm = {"SLURM_NTASKS": "2", "SLURM_LOCALID": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    launch(train_args(images, tmp_path / "runs"), tmp_path, [{**slurm, "SLURM_PROCID": str(r)} for r in (0, 1)])
    assert_same_run(single, tmp_path / "runs")


def test_the_sbatch_example_is_valid_bash_and_requeues_on_the_interrupted_exit_code(tmp_path):
    import re

    from ltlib.cli import INTERRUPTED_EXIT_CODE

    page = (REPO_ROOT / "book" / "full_scale.md").read_text()
    script = re.search(r"```bash\n(#!/bin/bash\n.*?)```", page, re.S).group(1)
    (tmp_path / "job.sbatch").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "job.sbatch")]).returncode == 0
    assert "#SBATCH --signal=TERM@" in script and "srun python -m ltlib train" in script
    assert f'"$status" -eq {INTERRUPTED_EXIT_CODE} ]' in script and 'scontrol requeue "$SLURM_JOB_ID"' in script


def test_gpu_groups_for_backbones_side_by_side():
    from ltlib.reproduce import gpu_groups

    assert gpu_groups(3, 2, None, 8) == ["0,1", "2,3", "4,5"]
    assert gpu_groups(3, 1, "4,5,7", 3) == ["4", "5", "7"]  # a scheduler's numbering is kept
    with pytest.raises(ConfigError, match="3 backbones × 2 GPU\\(s\\) need 6 GPUs, 4 visible"):
        gpu_groups(3, 2, None, 4)


def test_side_by_side_runs_each_backbone_on_its_own_gpus(monkeypatch, tmp_path):
    import threading

    import torch

    from ltlib import reproduce as rp

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    calls, lock = [], threading.Lock()

    def fake_run(command, check, env):
        with lock:
            calls.append((command[command.index("--backbone") + 1], command[command.index("--method") + 1],
                          env["CUDA_VISIBLE_DEVICES"]))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(rp.subprocess, "run", fake_run)
    plan = rp.ReproducePlan("places_lt", tmp_path, backbones=("clip", "openclip"), nproc=2, runs_root=tmp_path,
                            parallel_backbones=True)
    jobs = rp.stage1_jobs(plan, {"clip": None, "openclip": None})
    rp.run_stage1_side_by_side(plan, jobs, log=lambda line: None)
    assert sorted(calls) == [("clip", "LA", "0,1"), ("clip", "zeroshot", "0,1"),
                             ("openclip", "LA", "2,3"), ("openclip", "zeroshot", "2,3")]
    for backbone in ("clip", "openclip"):  # within a backbone, zero-shot still runs first
        assert [m for b, m, _ in calls if b == backbone] == ["zeroshot", "LA"]
