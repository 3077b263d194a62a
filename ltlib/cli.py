"""Command-line interface: ``python -m ltlib <command>`` (``--help`` lists the commands).

Each command is a small function registered in ``COMMANDS``; argument parsing stays next to it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import zlib
from pathlib import Path
from typing import Callable, Sequence

from .config import parse_overrides
from .errors import ConfigError, LtlibError
from .recipes import LOSSES

INTERRUPTED_EXIT_CODE = 130  # as a shell reports a Ctrl-C; the run resumes with the same command
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Decorator registering ``run(args)`` under ``name``, with ``configure(parser)`` adding its options."""
    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (configure, run, help_text)
        return run
    return wrap


def _configure_notebooks(p: argparse.ArgumentParser) -> None:
    p.add_argument("--setting", default="default", help="plan setting: smoke | default | full (notebooks/plan.yaml)")
    p.add_argument("--out", type=Path, default=None, help="folder for executed notebooks (default: book/executed)")
    p.add_argument("--force", action="store_true", help="re-execute notebooks that are up to date")
    p.add_argument("--only", nargs="*", default=None, help="execute only these notebooks (names)")
    p.add_argument("--set", nargs="+", default=(), metavar="KEY=VALUE",
                   help="override a parameter of every notebook (e.g. dataset=places_lt runs_root=runs)")


@command("run-notebooks", "execute the book's notebooks through papermill", _configure_notebooks)
def _run_notebooks(args: argparse.Namespace) -> int:
    from .book.runner import load_plan, run_all
    from .paths import book_executed_dir

    jobs = load_plan(args.setting, only=args.only, **parse_overrides(args.set))
    out = args.out or book_executed_dir()
    table = run_all(jobs, out, force=args.force)
    print(table.to_string(index=False))
    print(f"[runner] total {table['seconds'].sum():.1f} s over {len(table)} notebooks -> {out}")
    return 0


# --------------------------------------------------------------------------- shared parsing
def _main_rank() -> bool:
    """True in a single process and on rank 0 of a torchrun launch (or of Slurm tasks started by srun)."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) == 0


# --------------------------------------------------------------------------- what runs where
# Precision each command computes in, where it does not follow a training recipe.
_COMMAND_PRECISION = {"train": "recipe", "reproduce": "each run's recipe (auto: bf16/fp16 on CUDA, fp32 on CPU)",
                      "run-notebooks": "as each notebook sets (fp32 on CPU)", "bench": "as each benchmark states",
                      "summary": "none (reads a table)"}


def resolve_device(requested: str | None) -> str:
    """The device a command runs on: ``--device`` as given, else CUDA when usable, else CPU.

    An explicit ``cuda`` is never replaced by the CPU: without a usable CUDA device it is an error.

    Raises:
        ConfigError: ``cuda`` requested but not available, or an unknown device name.
    """
    import torch

    if not requested:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested != "cpu" and not re.fullmatch(r"cuda(:[0-9]+)?", requested):
        raise ConfigError(f"--device {requested!r}: expected cpu, cuda or cuda:N")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested}: CUDA is not available here (torch {torch.__version__}, "
                          f"built for CUDA {torch.version.cuda or 'none'}, {torch.cuda.device_count()} device(s) "
                          "visible); refusing to fall back to the CPU. Use --device cpu, or omit --device")
    return requested


def banner(command: str, *, device: str, precision: str, world_size: int, folder: object) -> str:
    """The line every command prints first (to stderr): what runs where, and where its output goes."""
    note = ""
    if device == "cpu":
        import torch

        note = " (CUDA available but not used)" if torch.cuda.is_available() else " (no usable CUDA device)"
    line = (f"[ltlib {command}] device {device}{note} | precision {precision} | world size {world_size} | "
            f"output {folder}")
    if _main_rank():
        print(line, file=sys.stderr, flush=True)
    return line


def _command_banner(args: argparse.Namespace) -> None:
    """The first line of every command (``train`` adds its run folder once the dataset is read)."""
    device = resolve_device(getattr(args, "device", None)) if args.command in ("predict", "train") else "cpu"
    if args.command in ("reproduce", "run-notebooks", "bench"):
        device = resolve_device(None)
    folder = next((getattr(args, k) for k in ("out", "runs_root", "cache_dir", "write_readme")
                   if getattr(args, k, None)), None)
    if folder is None:
        from .paths import book_executed_dir, cache_root

        folder = {"run-notebooks": book_executed_dir(), "validate-manifest": cache_root(),
                  "summary": "standard output"}.get(
            args.command, "results/stage2/<task>/<methods> (default)")
    precision = _train_precision(args, device) if args.command == "train" else \
        _COMMAND_PRECISION.get(args.command, "fp32")
    from .distributed import slurm_environment

    world_size = int(slurm_environment(os.environ).get("WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    banner(args.command, device=device, precision=precision, world_size=world_size, folder=folder)


def _train_precision(args: argparse.Namespace, device: str) -> str:
    import torch

    from .engine import resolve_precision

    recipe = _recipe(args.recipe, args.dataset, args.set)
    return f"{resolve_precision(recipe.precision, torch.device(device))} training, fp32 evaluation"


def _train_banner(ctx, run_dir: Path) -> None:
    if ctx.is_main:
        print(f"[ltlib train] run folder {run_dir}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- stage 1
def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="imagenet_lt | places_lt | inat2018, a dataset YAML path, or "
                   "your images: imagefolder:ROOT (a folder per class) or csv:FILE (path,label[,split])")
    p.add_argument("--data-root", type=Path, default=None,
                   help="the image root (see the dataset's image_layout); not used with imagefolder: / csv:")
    p.add_argument("--backbone", required=True, help="clip | openclip | metaclip (tiny: a random test ViT), or a "
                   "backbone YAML path")
    p.add_argument("--weights", type=Path, default=None,
                   help="local checkpoint (.safetensors/.bin/.pt); default: open_clip's hub tag (HF cache offline)")
    p.add_argument("--random-init", action="store_true",
                   help="random weights, for tests and smoke runs; recorded as backbone '<name>-random'")
    p.add_argument("--method", default="LA", choices=("zeroshot",) + LOSSES,
                   help="zeroshot or a training loss (default LA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recipe", default=None, help="recipe key or YAML (default: the dataset's, lift / lift_inat)")
    p.add_argument("--set", nargs="+", default=(), metavar="KEY=VALUE", help="recipe overrides, e.g. epochs=1")
    p.add_argument("--runs-root", type=Path, default=Path("runs"))
    p.add_argument("--train-list", type=Path, default=None,
                   help="your training list where it is not shipped (ImageNet_LT_train.txt, iNaturalist18_train.txt)")
    p.add_argument("--val-source", default="auto", help="where the class-balanced val split comes from: auto | val "
                   "| train_subset | test (auto: the shipped val list; iNat2018: a balanced subset of the train list)")
    p.add_argument("--prior-run", type=Path, default=None,
                   help="GLA-Train: the zero-shot run giving P̂_P (default: this backbone's zero-shot run)")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"), help="cpu | cuda (default: cuda when available)")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="torch.compile the training forward (default backend: inductor)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_own_data_options(p)
    _add_group_options(p)


def _add_own_data_options(p: argparse.ArgumentParser) -> None:
    """Options of ``imagefolder:`` / ``csv:`` datasets (``ltlib.data.own``)."""
    p.add_argument("--classnames", default=None, metavar="FILE",
                   help="csv: class names, one per line in label order (integer labels index into it)")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of each class held out as test when your data name no test split (default 0.2)")
    p.add_argument("--split-seed", type=int, default=0, help="seeds that hold-out (default 0)")


def _add_group_options(p: argparse.ArgumentParser) -> None:
    """The class groups: D-groups from training counts (book: Method, 'Groups') and P-groups from the prior
    (top 30 %, next 30 %)."""
    p.add_argument("--d-thresholds", nargs=2, type=int, default=None, metavar=("MANY", "FEW"),
                   help="D-groups: many n > MANY, few n < FEW (default: the paper's 100 20)")
    p.add_argument("--p-fractions", nargs=2, type=float, default=None, metavar=("MANY", "MEDIUM"),
                   help="P-groups: shares of P-many and P-medium classes by prior (default: the paper's 0.3 0.3)")




def _groups_info(args: argparse.Namespace) -> dict:
    """The group settings a ``train`` run records (stage 2 reads them back), validated now."""
    from .metrics import D_THRESHOLDS, P_FRACTIONS, d_groups, p_groups

    d = tuple(args.d_thresholds or D_THRESHOLDS)
    p = tuple(args.p_fractions or P_FRACTIONS)
    d_groups([1], *d), p_groups([1.0], p)  # raise ConfigError on bad values before any work
    return {"d_thresholds": list(d), "p_fractions": list(p)}


def _build_train_task(args: argparse.Namespace, recipe):
    """The task of ``--dataset``: a registry / YAML dataset under ``--data-root``, or your own images."""
    from .data.own import OwnDataOptions, is_own_spec
    from .tasks import build_own_task, build_task

    if is_own_spec(args.dataset):
        options = OwnDataOptions(args.test_fraction, args.split_seed, args.classnames)
        return build_own_task(args.dataset, options=options, recipe=recipe, val_source=args.val_source,
                              info=_groups_info(args))
    if args.data_root is None:
        raise ConfigError(f"--data-root is required for dataset {args.dataset!r} (imagefolder: and csv: specs "
                          "carry their own location)")
    task = build_task(args.dataset, args.data_root, train_list=args.train_list, recipe=recipe,
                      val_source=args.val_source)
    task.info.update(_groups_info(args))
    return task


@command("train", "stage 1: fine-tune (or evaluate zero-shot) one backbone and cache its logits", _configure_train)
def _train(args: argparse.Namespace) -> int:
    from .distributed import init_distributed, shutdown
    from .runs import RunInterrupted, RunSpec, load_run, run_stage1

    ctx = init_distributed(args.device)
    try:
        backbone, loader, backbone_id = _backbone_loader(args, ctx.device)
        recipe = _recipe(args.recipe, args.dataset, args.set)
        task = _build_train_task(args, recipe)
        spec = RunSpec(task.key, backbone, args.method, args.seed, recipe)
        _check_folder(args.runs_root, "--runs-root")
        prior = _pretrain_prior(args, spec) if args.method == "GLA-Train" else None
        _train_banner(ctx, spec.directory(args.runs_root))
        run_dir = run_stage1(spec, task, loader, args.runs_root, ctx, pretrain_prior=prior,
                             progress=not args.no_progress, compile_backend=args.compile,
                             backbone_identity=backbone_id)
    except RunInterrupted as exc:
        print(f"[train] {exc}", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    finally:
        shutdown(ctx)
    if ctx.is_main:
        accuracy = load_run(run_dir)["accuracy"]
        print(f"[train] {spec.method} {backbone} seed {spec.seed}: accuracy {accuracy} -> {run_dir}")
    return 0


def _check_folder(path: Path, option: str) -> None:
    """Require ``path`` to be a folder this process can write (created if absent), naming ``option``."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot create it ({exc.strerror or exc})") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: not writable by this user")


def _recipe(recipe: str | None, dataset: str, overrides: Sequence[str]):
    from .data import load_dataset_config
    from .data.own import is_own_spec
    from .recipes import load_recipe

    values = parse_overrides(overrides)
    for key, option in (("seed", "--seed"), ("loss", "--method")):
        if key in values:
            raise ConfigError(f"--set {key}={values[key]!r}: the run's {key} is given by {option}, not --set")
    default = "lift" if is_own_spec(dataset) else load_dataset_config(dataset).recipe
    return load_recipe(recipe or default, **values)


def _backbone_loader(args: argparse.Namespace, device) -> tuple[str, Callable, dict]:
    """(the name runs are recorded under, name → frozen backbone, what identifies its weights: the spec and
    the SHA-256 of ``--weights``); random weights get their own name."""
    from .backbones import BackboneSpec, build_backbone, get_spec, register_backbone
    from .provenance import to_plain

    spec = register_backbone(get_spec(args.backbone))  # a YAML path becomes its registry key
    if args.random_init:
        # A distinct name keeps smoke runs out of real runs' directories; the seed differs per backbone.
        random_spec = BackboneSpec(f"{spec.name}-random", spec.arch, None, spec.template,
                                   f"{spec.description} (random weights)")
        name, seed = register_backbone(random_spec).name, zlib.crc32(spec.name.encode()) % 2**31
        identity = {"spec": to_plain(random_spec), "random_init_seed": seed}
        return name, lambda key: build_backbone(key, random_init=True, seed=seed, device=device), identity
    weights = None if args.weights is None else {"file_sha256": _file_sha256(args.weights),
                                                 "size": args.weights.stat().st_size}
    identity = {"spec": to_plain(spec), "weights": weights}
    return spec.name, lambda key: build_backbone(key, weights=args.weights, device=device), identity


def _file_sha256(path: Path) -> str:
    """SHA-256 of a file read in 1 MiB blocks; a missing file is a ConfigError naming it."""
    import hashlib

    if not path.is_file():
        raise ConfigError(f"--weights {path}: weights file not found")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pretrain_prior(args: argparse.Namespace, spec):
    """P̂_P for GLA-Train from ``--prior-run`` or this backbone's zero-shot run (book: Method, 'Losses')."""
    from .runs import RunSpec, estimate_run_prior, is_complete

    run_dir = args.prior_run or RunSpec(spec.task, spec.backbone, "zeroshot", 0, spec.recipe).directory(args.runs_root)
    if not is_complete(run_dir, ("val",)):
        raise ConfigError(f"GLA-Train needs P̂_P from a complete zero-shot run, not found at {run_dir}: run the same "
                          "command with --method zeroshot first, or pass --prior-run DIR")
    return estimate_run_prior(run_dir, "val")


# --------------------------------------------------------------------------- stage 2
def _configure_adjust(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", nargs="+", required=True, type=Path, help="stage-1 run directories to combine")
    p.add_argument("--rule", nargs="+", default=None, metavar="RULE",
                   help="logit_sum (the official code's) and/or prob_mean (the paper's); default both")
    p.add_argument("--weights", nargs="+", type=float, default=None, help="one weight per run (default equal)")
    p.add_argument("--prior", nargs="+", type=Path, default=None, metavar="DIR",
                   help="zero-shot runs, one per backbone, for the P-groups (the geometric mean of their P̂_P; "
                        "default: each run's backbone's zero-shot run beside it, if unique)")
    p.add_argument("--no-prior", action="store_true", help="skip the P-groups")
    p.add_argument("--split", default="test", help="cached split to score (default test)")
    p.add_argument("--subsets", action="store_true", help="score every subset of the runs (M = 1 … M)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default results/stage2/<task>/<methods>)")
    _add_group_options(p)


@command("adjust", "stage 2: backdoor adjustment over cached runs; overall, D-/P-groups, D×P as JSON + CSV",
         _configure_adjust)
def _adjust(args: argparse.Namespace) -> int:
    from .adjust import RULES
    from .stage2 import Stage2Options, find_prior_runs, run_stage2, summary_table, write_stage2

    if not _main_rank():
        return 0  # stage 2 is cheap and single-process; under torchrun only rank 0 works
    prior = None if args.no_prior else (args.prior or find_prior_runs(args.runs))
    if prior is None and not args.no_prior:
        print("[adjust] no unique zero-shot run per backbone found beside the runs: P-groups skipped "
              "(pass --prior DIR …)")
    weights = None if args.weights is None else tuple(args.weights)
    options = Stage2Options(tuple(args.rule or RULES), weights, args.split, subsets=args.subsets,
                            p_fractions=_recorded_p_fractions(args),
                            d_thresholds=None if args.d_thresholds is None else tuple(args.d_thresholds))
    result = run_stage2(args.runs, prior, options)
    many, few = result.record["d_thresholds"]
    print(f"[adjust] D-groups many n > {many}, few n < {few}"
          f"{'' if args.d_thresholds else ' (as the task records)'}; "
          f"P-groups many/medium shares {options.p_fractions[0]}/{options.p_fractions[1]}")
    out = args.out or _default_stage2_dir(result.record)
    paths = write_stage2(result, out)
    print(summary_table(result.table).to_string())
    print(f"[adjust] wrote {paths['json']} and {paths['csv']}")
    return 0


def _recorded_p_fractions(args: argparse.Namespace) -> tuple[float, float]:
    """P-group shares: the command line's, else those the first run recorded at training, else the paper's.
    (D-thresholds need no such lookup: stage 2 reads each task's record itself.)"""
    from .metrics import P_FRACTIONS
    from .runs import load_run

    recorded = load_run(args.runs[0]).get("task_info", {}) if (args.runs[0] / "run.json").is_file() else {}
    return tuple(args.p_fractions or recorded.get("p_fractions") or P_FRACTIONS)


def _default_stage2_dir(record: dict) -> Path:
    methods = "+".join(sorted({r["method"] for r in record["runs"]}))
    seeds = "+".join(str(s) for s in sorted({r["seed"] for r in record["runs"]}))
    return Path("results") / "stage2" / record["task"].replace("/", "__") / f"{methods}-seed{seeds}"


# --------------------------------------------------------------------------- use a trained model
def _configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--run", required=True, type=Path, help="a complete trained stage-1 run folder (not zero-shot)")
    p.add_argument("--out", required=True, type=Path, help="export folder: model.safetensors + card.json")


@command("export", "write a trained run's adapters + head as safetensors with a JSON card", _configure_export)
def _export(args: argparse.Namespace) -> int:
    from .export import CARD_NAME, WEIGHTS_NAME, export_run
    from .storage import read_json

    out = export_run(args.run, args.out)
    card = read_json(out / CARD_NAME)
    print(f"[export] {card['method']} {card['backbone']} on {card['task']} ({len(card['classnames'])} classes, "
          f"test accuracy {card['accuracy'].get('test')}) -> {out / WEIGHTS_NAME}, {out / CARD_NAME}")
    return 0


def _configure_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", required=True, type=Path,
                   help="export folders (or trained run folders); several: the backdoor adjustment over them")
    p.add_argument("--images", required=True, type=Path, help="a folder of images (searched recursively)")
    p.add_argument("--out", required=True, type=Path, help="the CSV to write (path, prediction, score, top-k)")
    p.add_argument("--rule", default="logit_sum", help="logit_sum (default) | prob_mean, for several models")
    p.add_argument("--top-k", type=int, default=5, help="classes listed per image (default 5)")
    p.add_argument("--weights", nargs="+", type=Path, default=None,
                   help="one local backbone checkpoint per model (default: hub tags; random backbones need none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")


@command("predict", "classify a folder of images with one model or the backdoor adjustment of several; CSV out",
         _configure_predict)
def _predict(args: argparse.Namespace) -> int:
    from .export import load_model, predict_folder
    from .storage import write_text

    if args.weights is not None and len(args.weights) != len(args.models):
        raise ConfigError(f"--weights: {len(args.weights)} files for {len(args.models)} models; give one per model")
    if args.top_k < 1 or args.batch_size < 1:
        raise ConfigError(f"--top-k={args.top_k} and --batch-size={args.batch_size} must be >= 1")
    device = resolve_device(args.device)
    weights = args.weights or [None] * len(args.models)
    models = [load_model(m, device, w) for m, w in zip(args.models, weights)]
    table = predict_folder(models, args.images, rule=args.rule, top_k=args.top_k, batch_size=args.batch_size)
    write_text(args.out, table.to_csv(index=False))
    how = "one model" if len(models) == 1 else f"the backdoor adjustment ({args.rule}) of {len(models)} models"
    print(f"[predict] {len(table)} images with {how} -> {args.out}")
    return 0


# --------------------------------------------------------------------------- data
def _configure_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="imagenet_lt | places_lt | inat2018, or a dataset YAML path")
    p.add_argument("--file", required=True, type=Path, help="the list to check (plain text or gzip)")
    p.add_argument("--split", default="train", help="which split it stands for (default train)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where its SHA-256 is pinned (default $LTLIB_CACHE or ~/.cache/ltlib)")
    p.add_argument("--d-thresholds", nargs=2, type=int, default=None, metavar=("MANY", "FEW"),
                   help="D-groups of the printed summary: many n > MANY, few n < FEW (default 100 20)")


@command("validate-manifest", "check a user-supplied split list (format, counts, labels) and pin its SHA-256",
         _configure_validate)
def _validate_manifest(args: argparse.Namespace) -> int:
    from .data import class_counts, group_sizes, load_dataset_config, validate_user_manifest

    config = load_dataset_config(args.dataset)
    checked = validate_user_manifest(args.file, config, args.split, cache_dir=args.cache_dir)
    counts = class_counts(checked.manifest.labels, checked.manifest.num_classes)
    sizes = group_sizes(counts, *(args.d_thresholds or ()))  # default: the paper's thresholds
    pinned = "recorded on first use in" if checked.first_use else "matches the SHA-256 recorded in"
    lift = {True: "yes", False: "no", None: "unknown"}[checked.matches_lift]
    print(f"OK: {args.file} is a valid {config.title} {args.split} list: {len(checked.manifest)} lines, "
          f"{checked.manifest.num_classes} classes, {counts.min()}-{counts.max()} per class, many/medium/few "
          f"{'/'.join(map(str, sizes))}\n    SHA-256 {checked.sha256} ({pinned} {checked.record}); "
          f"byte-identical to LIFT's copy: {lift}")
    return 0


# --------------------------------------------------------------------------- pipelines and benchmarks
def _configure_reproduce(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="imagenet_lt | places_lt | inat2018 (or a dataset YAML path)")
    p.add_argument("--data-root", required=True, type=Path)
    p.add_argument("--weights-dir", type=Path, default=None,
                   help="folder with <backbone>.safetensors (or .bin/.pt/.pth, or <backbone>/open_clip_model."
                        "safetensors); default: open_clip hub tags / the local HF cache")
    p.add_argument("--train-list", type=Path, default=None, help="your training list where it is not shipped")
    p.add_argument("--nproc", type=int, default=1, help="processes (GPUs) per stage-1 run; > 1 uses torchrun")
    p.add_argument("--backbones", nargs="+", default=None, help="default: clip openclip metaclip")
    p.add_argument("--methods", nargs="+", default=["LA"], help="trained methods (LA; CE, GLA-Train optional); "
                   "zero-shot always runs first")
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--runs-root", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, default=Path("results/full"))
    p.add_argument("--recipe", default=None)
    p.add_argument("--set", nargs="+", default=(), metavar="KEY=VALUE", help="recipe overrides for every run")
    p.add_argument("--val-source", default="auto", help="auto | val | train_subset | test (see train --help)")
    p.add_argument("--skip-notebooks", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="check inputs and print the commands only")
    _add_parallel_backbones_option(p)


def _add_parallel_backbones_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parallel-backbones", action="store_true",
                   help="train the backbones side by side, each on its own --nproc GPUs "
                        "(needs backbones × nproc GPUs)")


@command("reproduce", "full scale: stage 1 for every backbone, stage 2, then the notebooks (make reproduce)",
         _configure_reproduce)
def _reproduce(args: argparse.Namespace) -> int:
    from .reproduce import DEFAULT_BACKBONES, ReproducePlan, reproduce

    backbones = tuple(args.backbones or DEFAULT_BACKBONES)
    plan = ReproducePlan(args.dataset, args.data_root, args.weights_dir, args.train_list, backbones,
                         tuple(args.methods), tuple(args.seeds), args.nproc, args.runs_root, args.out,
                         tuple(args.set), args.recipe, args.val_source, not args.skip_notebooks,
                         parallel_backbones=args.parallel_backbones)
    reproduce(plan, dry_run=args.dry_run)
    return 0


def _configure_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("results/bench"), help="folder for bench.csv and bench.md")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                   help="run only these: prior stage2 train inference book rates batched")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run of the benchmark code)")


@command("bench", "performance benchmarks: tidy CSV + markdown table (make bench)", _configure_bench)
def _bench(args: argparse.Namespace) -> int:
    from .bench.rates import RUNNERS
    from .bench.suite import BenchOptions, run_benchmarks

    table = run_benchmarks(args.out, BenchOptions(quick=args.quick, only=tuple(args.only or ())), RUNNERS)
    print(table[["benchmark", "case", "metric", "value", "unit"]].to_string(index=False))
    return 0


def _configure_summary(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verdicts", type=Path, required=True,
                   help="the report's verdicts.csv (committed snapshot: book/data/verdicts.csv)")
    p.add_argument("--write-readme", type=Path, default=None, metavar="README",
                   help="replace the block between <!-- verdicts:start --> and <!-- verdicts:end --> of this file "
                        "instead of printing")


@command("summary", "the verdict summary of the report, as markdown (or into the README)", _configure_summary)
def _summary(args: argparse.Namespace) -> int:
    from .book.summary import read_verdicts, render_summary, write_readme

    block = render_summary(read_verdicts(args.verdicts), source=_shown_path(args.verdicts))
    if args.write_readme is None:
        print(block, end="")
    else:
        write_readme(args.write_readme, block)
        print(f"[ltlib summary] {args.write_readme}: verdict block rewritten from {args.verdicts}", file=sys.stderr)
    return 0


def _configure_sensitivity(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", type=Path, default=None, help="the grid (default: ltlib/configs/sensitivity/grid.yaml)")
    p.add_argument("--out", type=Path, default=Path("results/sensitivity"), help="folder of the cells' runs")
    p.add_argument("--book-results", type=Path, default=Path("results/default"),
                   help="the book's results (the default cell; `make book` writes them)")
    p.add_argument("--verdicts", type=Path, required=True,
                   help="where to write the verdict of every claim in every cell (book/data/sensitivity/verdicts.csv)")
    p.add_argument("--force", action="store_true", help="re-execute the cells' notebooks that are up to date")


@command("sensitivity", "judge every claim again in each cell of the sensitivity grid (make sensitivity)",
         _configure_sensitivity)
def _sensitivity(args: argparse.Namespace) -> int:
    from .book.sensitivity import GRID_PATH, cell_verdicts, load_grid, run_cell
    from .storage import write_text

    grid = load_grid(args.grid or GRID_PATH)
    for cell in grid.cells[1:]:  # the default cell is the book's own build
        print(f"[ltlib sensitivity] cell {cell.name!r}: world {cell.world}, epochs × {cell.finetune_epochs_factor}",
              file=sys.stderr, flush=True)
        run_cell(cell, grid, args.out, force=args.force)
    verdicts = cell_verdicts(grid, args.out, args.book_results)
    write_text(args.verdicts, verdicts.to_csv(index=False))
    print(f"[ltlib sensitivity] {len(verdicts)} verdicts over {len(grid.cells)} cells -> {args.verdicts}",
          file=sys.stderr)
    return 0


def _configure_judge(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tables", nargs="+", required=True, metavar="LABEL=DIR",
                   help="result-table folders to judge, each with a label (e.g. default=results/default/tables)")
    p.add_argument("--notebooks", nargs="*", default=None, help="only these notebooks' tables (names)")
    p.add_argument("--claims", nargs="*", default=None, help="only the claims whose key starts with one of these")
    p.add_argument("--first-worlds", nargs="+", type=int, default=None, metavar="N",
                   help="judge on the first N worlds for each N (default: every world of the tables)")
    p.add_argument("--out", type=Path, required=True, help="the CSV of headline verdicts to write")


@command("judge", "the registry's headline verdicts of result tables, over the first N worlds (book: Reliability)",
         _configure_judge)
def _judge(args: argparse.Namespace) -> int:
    import pandas as pd

    from .book.registry import load_registry
    from .book.report import FIRST_WORLDS_COLUMNS, verdicts_over_first_worlds
    from .results import load_tables
    from .storage import write_text

    specs = [s for s in load_registry() if not args.claims or s.key.startswith(tuple(args.claims))]
    if not specs:
        raise ConfigError(f"--claims {args.claims}: no claim of the registry starts with these")
    frames = []
    for label, folder in parse_labelled(args.tables, "--tables").items():
        rows = load_tables(folder, args.notebooks)
        if rows.empty:
            raise ConfigError(f"--tables {label}={folder}: no result tables there")
        counts = args.first_worlds or [len({int(s) for s in rows["world_seed"] if s >= 0})]
        judged = verdicts_over_first_worlds(specs, rows, counts)
        if judged.empty:
            raise ConfigError(f"--first-worlds {counts}: the tables of {label}={folder} hold fewer worlds")
        frames.append(judged.assign(label=label))
    table = pd.concat(frames, ignore_index=True)[list(FIRST_WORLDS_COLUMNS)]
    write_text(args.out, table.to_csv(index=False))
    print(table[["label", "worlds_used", "key", "verdict", "firm", "mean", "low", "high"]].to_string(index=False))
    return 0


def parse_labelled(items: Sequence[str], option: str) -> dict[str, Path]:
    """``["a=dir1", "b=dir2"]`` → ``{"a": Path("dir1"), ...}``; one error naming ``option`` and the item."""
    out = {}
    for item in items:
        label, sep, folder = item.partition("=")
        if not sep or not label.strip() or not folder.strip() or label in out:
            raise ConfigError(f"{option} {item!r}: expected LABEL=DIR with a label of its own")
        out[label.strip()] = Path(folder.strip())
    return out


def _shown_path(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it (as the README names files)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ltlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def run(command_line: str) -> None:
    """Run one ``python -m ltlib …`` command line in this process (the book's pages call the commands so).

    Args:
        command_line: the arguments after ``python -m ltlib``, quoted as in a POSIX shell.
    Raises:
        RuntimeError: the command exited with a non-zero code (its one-line error is on stderr).
    """
    import shlex

    code = main(shlex.split(command_line))
    if code != 0:
        raise RuntimeError(f"python -m ltlib {command_line}: exit code {code}")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; ltlib errors print one clear line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        resolve_device(getattr(args, "device", None))  # an explicit --device cuda without CUDA stops here
        _command_banner(args)
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); a training run resumes with the same command", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    except LtlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or folder the command could not use; the message names it
        print(f"error: {exc}", file=sys.stderr)
        return 2
