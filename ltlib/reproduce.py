"""``make reproduce`` (book: Method, 'Stage 1', 'Stage 2'): stage 1 for each backbone, stage 2, then the notebooks.

Weights are found in ``WEIGHTS_DIR`` by backbone key (see :func:`weight_candidates`): ``clip.safetensors``,
``openclip.safetensors``, ``metaclip.safetensors`` (or ``.bin`` / ``.pt`` / ``.pth``), or a folder per key
holding open_clip's Hugging Face file (``openclip/open_clip_model.safetensors``). Every stage-1 run is one
``python -m ltlib train`` process (under ``torchrun`` when ``nproc > 1``), so a crash or pre-emption costs
only the run in progress, which the same command resumes.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .backbones import build_backbone, get_spec
from .config import parse_overrides
from .data import load_dataset_config, validate_user_manifest
from .errors import ConfigError, LtlibError, WeightsNotFoundError
from .recipes import LOSSES, TrainConfig, load_recipe
from .runs import RunSpec, is_complete
from .stage2 import Stage2Options, run_stage2, summary_table, write_stage2
from .tasks import task_key

DEFAULT_BACKBONES = ("clip", "openclip", "metaclip")  # the paper's three; their zero-shot priors give P-groups
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
HUB_FILE_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")  # as open_clip's hub repos name them


class StageError(LtlibError, RuntimeError):
    """A stage's process failed; the message names the command to re-run (finished runs are reused)."""


@dataclass(frozen=True)
class ReproducePlan:
    """What ``make reproduce`` runs.

    Attributes:
        dataset: registry key (``imagenet_lt`` | ``places_lt`` | ``inat2018``) or a dataset YAML.
        data_root: the image root.
        weights_dir: local checkpoints (:func:`weight_candidates`); None: open_clip's hub tags (the local
            Hugging Face cache when ``HF_HUB_OFFLINE=1``).
        train_list: the user's training list (ImageNet-LT, iNat2018).
        backbones: foundation models; stage 2 combines all of them.
        methods: trained methods (``LA``; optionally ``CE``, ``GLA-Train``); zero-shot always runs first,
            because GLA-Train and the P-groups need its prior.
        seeds: one stage-1 run per (backbone, method, seed).
        nproc: processes per run (GPUs); > 1 launches ``torchrun``.
        runs_root: the stage-1 runs root.
        out_dir: stage-2 results go to ``<out_dir>/<task>/stage2-<method>-seed<k>/``.
        overrides: recipe ``key=value`` overrides (``--set``), applied to every run.
        recipe: recipe key or YAML; None: the dataset's (``lift`` or ``lift_inat``).
        val_source: see ``ltlib.tasks.VAL_SOURCES``.
        notebooks: re-run the book's notebooks at the ``full`` setting at the end.
    """

    dataset: str
    data_root: Path
    weights_dir: Path | None = None
    train_list: Path | None = None
    backbones: tuple[str, ...] = DEFAULT_BACKBONES
    methods: tuple[str, ...] = ("LA",)
    seeds: tuple[int, ...] = (0,)
    nproc: int = 1
    runs_root: Path = Path("runs")
    out_dir: Path = Path("results/full")
    overrides: tuple[str, ...] = ()
    recipe: str | None = None
    val_source: str = "auto"
    notebooks: bool = True

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in LOSSES]
        if bad or not self.methods:
            raise ConfigError(f"methods={self.methods!r}: expected trained methods from {LOSSES} "
                              "(zero-shot always runs)")
        if self.nproc < 1 or not self.backbones or not self.seeds:
            raise ConfigError(f"need nproc >= 1 (got {self.nproc}), one or more backbones and seeds")

    @property
    def task(self) -> str:
        return task_key(self.dataset, self.val_source)

    def train_recipe(self) -> TrainConfig:
        """The recipe every stage-1 run uses (the dataset's, with ``overrides``)."""
        key = self.recipe or load_dataset_config(self.dataset).recipe
        return load_recipe(key, **parse_overrides(self.overrides))

    def run_dir(self, backbone: str, method: str, seed: int) -> Path:
        """Where ``python -m ltlib train`` puts that run (``RunSpec.directory``)."""
        return RunSpec(self.task, backbone, method, seed, self.train_recipe()).directory(self.runs_root)


# --------------------------------------------------------------------------- weights
def weight_candidates(backbone: str) -> tuple[str, ...]:
    """File names looked up in ``WEIGHTS_DIR`` for ``backbone``, in order.

    Example for ``openclip``: ``openclip.safetensors``, ``openclip.bin``, ``openclip.pt``,
    ``openclip.pth``, ``openclip/open_clip_model.safetensors``, ``openclip/open_clip_pytorch_model.bin``.
    """
    return tuple(f"{backbone}{s}" for s in WEIGHT_SUFFIXES) + tuple(f"{backbone}/{n}" for n in HUB_FILE_NAMES)


def locate_weights(backbone: str, weights_dir: str | Path) -> Path:
    """The first existing :func:`weight_candidates` file under ``weights_dir``.

    Raises:
        WeightsNotFoundError: none exists; the message lists the names tried and the weights wanted.
    """
    for name in weight_candidates(backbone):
        if (Path(weights_dir) / name).is_file():
            return Path(weights_dir) / name
    spec = get_spec(backbone)
    tried = ", ".join(weight_candidates(backbone))
    raise WeightsNotFoundError(
        f"no weights for backbone {backbone!r} in WEIGHTS_DIR={weights_dir}: tried {tried}. It needs open_clip "
        f"arch {spec.arch!r} with pre-trained tag {spec.pretrained!r} ({spec.description}); "
        "save it there under one of those names (see book/full_scale.md, section 'Weights').")


def resolve_weights(plan: ReproducePlan, check_load: bool = True) -> dict[str, Path | None]:
    """Per backbone, its local checkpoint (None: the hub tag), checked before any run starts.

    Args:
        plan: the plan.
        check_load: also build each backbone once on the CPU, which catches a missing hub cache, a file of
            the wrong architecture or a corrupt file in seconds rather than hours into stage 1.
    Raises:
        WeightsNotFoundError / ConfigError: naming the backbone and what to do.
    """
    weights = {b: None if plan.weights_dir is None else locate_weights(b, plan.weights_dir) for b in plan.backbones}
    if check_load:
        for backbone, path in weights.items():
            build_backbone(backbone, weights=path)
    return weights


def check_train_list(plan: ReproducePlan) -> None:
    """Require (and validate) the user's training list where the dataset does not ship one."""
    config = load_dataset_config(plan.dataset)
    spec = config.split("train")
    if plan.train_list is not None:
        validate_user_manifest(plan.train_list, config, "train")
    elif not spec.shipped:
        raise ConfigError(f"dataset {config.name} needs its training list: pass TRAIN_LIST=... (--train-list). "
                          f"The standard file is {spec.standard_name}: {spec.obtain}")


# --------------------------------------------------------------------------- commands
def train_command(plan: ReproducePlan, backbone: str, method: str, seed: int, weights: Path | None) -> list[str]:
    """The stage-1 command of one run: ``python -m ltlib train …``, under torchrun when ``nproc > 1``."""
    launcher = [sys.executable, "-m", "ltlib"]
    if plan.nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={plan.nproc}", "-m", "ltlib"]
    args = ["train", "--dataset", str(plan.dataset), "--data-root", str(plan.data_root), "--backbone", backbone,
            "--method", method, "--seed", str(seed), "--runs-root", str(plan.runs_root),
            "--val-source", plan.val_source]
    args += ["--weights", str(weights)] if weights is not None else []
    args += ["--train-list", str(plan.train_list)] if plan.train_list is not None else []
    args += ["--recipe", plan.recipe] if plan.recipe else []
    args += ["--set", *plan.overrides] if plan.overrides else []
    return launcher + args


@dataclass(frozen=True)
class Stage1Job:
    """One stage-1 run: its identity and the command that makes (or resumes) it."""

    backbone: str
    method: str
    seed: int
    command: tuple[str, ...]


def stage1_jobs(plan: ReproducePlan, weights: dict[str, Path | None]) -> list[Stage1Job]:
    """Every stage-1 run in order: per backbone, zero-shot first, then each seed and method."""
    keys = [(b, m, s) for b in plan.backbones for m, s in [("zeroshot", 0)] + [(m, s) for s in plan.seeds
                                                                                for m in plan.methods]]
    return [Stage1Job(b, m, s, tuple(train_command(plan, b, m, s, weights[b]))) for b, m, s in keys]


def notebook_command(plan: ReproducePlan) -> list[str]:
    """``python -m ltlib run-notebooks --setting full`` pointed at this dataset's runs."""
    return [sys.executable, "-m", "ltlib", "run-notebooks", "--setting", "full", "--set", f"dataset={plan.task}",
            f"runs_root={plan.runs_root}", f"out_dir={plan.out_dir}"]


def run_command(command: list[str], stage: str, log: Callable[[str], None] = print) -> None:
    """Run one command in the foreground; a non-zero exit raises :class:`StageError` naming it."""
    log(f"[reproduce] {stage}: {shlex.join(command)}")
    code = subprocess.run(command, check=False).returncode
    if code != 0:
        raise StageError(f"{stage} failed with exit code {code}: {shlex.join(command)}. Fix the cause and run "
                         "`make reproduce` again: finished runs are reused and an interrupted run resumes.")


# --------------------------------------------------------------------------- stage 2 and the whole pipeline
def run_stage2_all(plan: ReproducePlan, log: Callable[[str], None] = print) -> list[Path]:
    """Stage 2 for every (method, seed): all backbones combined, every subset scored (Tab. 8).

    P-groups come from one prior for every row (``ltlib.stage2.PRIOR_POLICY``): the geometric mean of the
    backbones' zero-shot P̂_P, as in the book.
    Returns:
        The folders written (``stage2.json`` + ``stage2.csv`` each).
    """
    prior_runs = [plan.run_dir(b, "zeroshot", 0) for b in plan.backbones]
    written = []
    for method in plan.methods:
        for seed in plan.seeds:
            runs = [plan.run_dir(b, method, seed) for b in plan.backbones]
            result = run_stage2(runs, prior_runs, Stage2Options(subsets=True))
            out = plan.out_dir / plan.task / f"stage2-{method}-seed{seed}"
            write_stage2(result, out)
            log(f"[reproduce] stage 2 ({method}, seed {seed}) -> {out}\n{summary_table(result.table).to_string()}")
            written.append(out)
    return written


def reproduce(plan: ReproducePlan, *, dry_run: bool = False, log: Callable[[str], None] = print) -> list[Path]:
    """Check the inputs, then run stage 1, stage 2 and the notebooks; completed runs are skipped.

    Args:
        plan: the plan.
        dry_run: check the inputs that need no model (train list, weight files) and print the commands.
    Returns:
        The stage-2 result folders (empty for a dry run).
    """
    check_train_list(plan)
    jobs = stage1_jobs(plan, resolve_weights(plan, check_load=not dry_run))
    if dry_run:
        for command in [list(j.command) for j in jobs] + ([notebook_command(plan)] if plan.notebooks else []):
            log(shlex.join(command))
        return []
    for job in jobs:
        if is_complete(plan.run_dir(job.backbone, job.method, job.seed), ("val", "test")):
            log(f"[reproduce] complete, skipped: {shlex.join(job.command)}")
            continue
        run_command(list(job.command), "stage 1", log)
    written = run_stage2_all(plan, log)
    if plan.notebooks:
        run_command(notebook_command(plan), "notebooks", log)
    return written
