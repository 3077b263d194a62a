"""Command-line interface: ``python -m ltlib <command>`` (``--help`` lists the commands).

Each command is a small function registered in ``COMMANDS``; argument parsing stays next to it.
"""

from __future__ import annotations

import argparse
import os
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
    """True in a single process and on rank 0 of a torchrun launch."""
    return int(os.environ.get("RANK", "0")) == 0


# --------------------------------------------------------------------------- stage 1
def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="imagenet_lt | places_lt | inat2018, or a dataset YAML path")
    p.add_argument("--data-root", required=True, type=Path, help="the image root (see the dataset's image_layout)")
    p.add_argument("--backbone", required=True, help="clip | openclip | metaclip, or a backbone YAML path")
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
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="torch.compile the training forward (default backend: inductor)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


@command("train", "stage 1: fine-tune (or evaluate zero-shot) one backbone and cache its logits", _configure_train)
def _train(args: argparse.Namespace) -> int:
    from .distributed import init_distributed, shutdown
    from .runs import RunInterrupted, RunSpec, load_run, run_stage1
    from .tasks import build_task

    ctx = init_distributed(args.device)
    try:
        backbone, loader = _backbone_loader(args, ctx.device)
        recipe = _recipe(args.recipe, args.dataset, args.set)
        task = build_task(args.dataset, args.data_root, train_list=args.train_list, recipe=recipe,
                          val_source=args.val_source)
        spec = RunSpec(task.key, backbone, args.method, args.seed, recipe)
        prior = _pretrain_prior(args, spec) if args.method == "GLA-Train" else None
        run_dir = run_stage1(spec, task, loader, args.runs_root, ctx, pretrain_prior=prior,
                             progress=not args.no_progress, compile_backend=args.compile)
    except RunInterrupted as exc:
        print(f"[train] {exc}", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    finally:
        shutdown(ctx)
    if ctx.is_main:
        accuracy = load_run(run_dir)["accuracy"]
        print(f"[train] {spec.method} {backbone} seed {spec.seed}: accuracy {accuracy} -> {run_dir}")
    return 0


def _recipe(recipe: str | None, dataset: str, overrides: Sequence[str]):
    from .data import load_dataset_config
    from .recipes import load_recipe

    return load_recipe(recipe or load_dataset_config(dataset).recipe, **parse_overrides(overrides))


def _backbone_loader(args: argparse.Namespace, device) -> tuple[str, Callable]:
    """(the name runs are recorded under, name → frozen backbone); random weights get their own name."""
    from .backbones import BackboneSpec, build_backbone, get_spec, register_backbone

    spec = register_backbone(get_spec(args.backbone))  # a YAML path becomes its registry key
    if args.random_init:
        # A distinct name keeps smoke runs out of real runs' directories; the seed differs per backbone.
        random_spec = BackboneSpec(f"{spec.name}-random", spec.arch, None, spec.template,
                                   f"{spec.description} (random weights)")
        name, seed = register_backbone(random_spec).name, zlib.crc32(spec.name.encode()) % 2**31
        return name, lambda key: build_backbone(key, random_init=True, seed=seed, device=device)
    return spec.name, lambda key: build_backbone(key, weights=args.weights, device=device)


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
    options = Stage2Options(tuple(args.rule or RULES), weights, args.split, subsets=args.subsets)
    result = run_stage2(args.runs, prior, options)
    out = args.out or _default_stage2_dir(result.record)
    paths = write_stage2(result, out)
    print(summary_table(result.table).to_string())
    print(f"[adjust] wrote {paths['json']} and {paths['csv']}")
    return 0


def _default_stage2_dir(record: dict) -> Path:
    methods = "+".join(sorted({r["method"] for r in record["runs"]}))
    seeds = "+".join(str(s) for s in sorted({r["seed"] for r in record["runs"]}))
    return Path("results") / "stage2" / record["task"].replace("/", "__") / f"{methods}-seed{seeds}"


# --------------------------------------------------------------------------- data
def _configure_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="imagenet_lt | places_lt | inat2018, or a dataset YAML path")
    p.add_argument("--file", required=True, type=Path, help="the list to check (plain text or gzip)")
    p.add_argument("--split", default="train", help="which split it stands for (default train)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="where its SHA-256 is pinned (default $LTLIB_CACHE or ~/.cache/ltlib)")


@command("validate-manifest", "check a user-supplied split list (format, counts, labels) and pin its SHA-256",
         _configure_validate)
def _validate_manifest(args: argparse.Namespace) -> int:
    from .data import class_counts, group_sizes, load_dataset_config, validate_user_manifest

    config = load_dataset_config(args.dataset)
    checked = validate_user_manifest(args.file, config, args.split, cache_dir=args.cache_dir)
    counts = class_counts(checked.manifest.labels, checked.manifest.num_classes)
    pinned = "recorded on first use in" if checked.first_use else "matches the SHA-256 recorded in"
    lift = {True: "yes", False: "no", None: "unknown"}[checked.matches_lift]
    print(f"OK: {args.file} is a valid {config.title} {args.split} list: {len(checked.manifest)} lines, "
          f"{checked.manifest.num_classes} classes, {counts.min()}-{counts.max()} per class, many/medium/few "
          f"{'/'.join(map(str, group_sizes(counts)))}\n    SHA-256 {checked.sha256} ({pinned} {checked.record}); "
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


@command("reproduce", "full scale: stage 1 for every backbone, stage 2, then the notebooks (make reproduce)",
         _configure_reproduce)
def _reproduce(args: argparse.Namespace) -> int:
    from .reproduce import DEFAULT_BACKBONES, ReproducePlan, reproduce

    backbones = tuple(args.backbones or DEFAULT_BACKBONES)
    plan = ReproducePlan(args.dataset, args.data_root, args.weights_dir, args.train_list, backbones,
                         tuple(args.methods), tuple(args.seeds), args.nproc, args.runs_root, args.out,
                         tuple(args.set), args.recipe, args.val_source, not args.skip_notebooks)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ltlib", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, run, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        configure(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the command; ltlib errors print one clear line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except LtlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
