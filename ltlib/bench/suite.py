"""Performance benchmarks (``make bench``, not tests): ratios of two things measured side by side in one run.

Results go to a tidy CSV with provenance and a markdown table:

1. ``prior``: GLA prior estimation, exact solver vs reference mode (book: Method, 'The GLA prior estimator').
2. ``stage2``: stage 2 from cached logits at ImageNet-LT and iNat2018 size, compressed vs uncompressed cache.
3. ``train``: AdaptFormer ViT-B/16 training throughput, our engine vs a LIFT-equivalent loop
   (book: Method, 'Optimisation').
4. ``inference``: FLOPs and images/s of M = 1, 2, 3 ViT-B/16 models at 224 px, beside the paper's GFLOPs.
5. ``book``: ``make book`` wall time from the notebook runner's ``timings.csv`` (a hook, see :func:`bench_book`).
6. ``rates``: the mini world's achieved GFLOP/s in pre-training and fine-tuning beside a large matmul's
   (``ltlib.bench.rates``).
7. ``batched``: K mini-world fine-tuning runs batched vs one by one (``ltlib.bench.batched``).
"""

from __future__ import annotations

import datetime
import io
import itertools
import json
import math
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..cache import SplitOutputs, split_path
from ..errors import ConfigError
from ..flops import PAPER_GFLOPS, ensemble_cost, timed
from ..parallel import torch_threads
from ..paths import book_executed_dir, smoke_executed_dir
from ..provenance import git_sha, library_versions
from ..storage import atomic_path, read_table, write_text

BENCHMARKS = ("prior", "stage2", "train", "inference", "book", "rates", "batched")
# Benchmarks whose code lives in other modules of this package (which import this one): their runners come
# in through ``run_benchmarks(runners=...)``; ``python -m ltlib bench`` passes ``ltlib.bench.rates.RUNNERS``.
EXTERNAL_BENCHMARKS = ("rates", "batched")
BENCH_COLUMNS = ("benchmark", "case", "metric", "value", "unit", "note", "device", "git_sha", "versions",
                 "timestamp")
GLA_ITERATIONS = 1000  # the reference solver's fixed iteration count (book: Method, 'The GLA prior estimator')
NOT_MEASURED = float("nan")
ESTIMATES_FILE = "estimates/full_scale.csv"
# Executed-notebook folders whose runner ``timings.csv`` the ``book`` benchmark reads, keyed by the mini
# world's setting: ``make bench`` runs the smoke notebooks into the first; ``make book`` writes the second.
BOOK_TIMINGS: dict[str, Path] = {"smoke": smoke_executed_dir() / "timings.csv",
                                 "default": book_executed_dir() / "timings.csv"}


@dataclass(frozen=True)
class BenchOptions:
    """What :func:`run_benchmarks` measures.

    Attributes:
        quick: tiny sizes, for a smoke run of the benchmark code (the numbers mean nothing).
        only: benchmark names to run (:data:`BENCHMARKS`); empty runs all.
        seed: seeds every synthetic input.
        reference_iterations: per prior case, reference-mode iterations actually run; where fewer than
            GLA's 1000, the 1000-iteration time is extrapolated and the row says so. None: 1000 for
            C = 1000 and 100 for C = 8,142 (about an hour on 2 CPU cores in full).
    """

    quick: bool = False
    only: tuple[str, ...] = ()
    seed: int = 0
    reference_iterations: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.only) - set(BENCHMARKS))
        if unknown:
            raise ConfigError(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}")

    @property
    def selected(self) -> tuple[str, ...]:
        return tuple(b for b in BENCHMARKS if not self.only or b in self.only)


def row(benchmark: str, case: str, metric: str, value: float, unit: str, note: str = "") -> dict[str, Any]:
    """One tidy measurement (provenance columns are added by :func:`run_benchmarks`)."""
    return {"benchmark": benchmark, "case": case, "metric": metric, "value": float(value), "unit": unit, "note": note}


def describe_device(device: torch.device) -> str:
    """``"NVIDIA H100 …"`` or ``"CPU: <model> (<n> threads)"``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
             if line.startswith("model name")] if cpuinfo.is_file() else []
    return f"CPU: {names[0] if names else platform.processor() or 'unknown'} ({torch.get_num_threads()} threads)"


# --------------------------------------------------------------------------- 1. prior estimation
def synthetic_logits(num_classes: int, per_class: int, bias_std: float, seed: int,
                     dim: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Zero-shot-like logits with a per-class bias, the generator of tests/test_priors.py.

    ``y`` repeats each class ``per_class`` times; ``z = 0.35 · X Wᵀ + log q`` with class directions W,
    samples X = noise + 0.6 · W_y and a log-normal bias ``log q ~ N(0, bias_std²)``.

    Returns:
        (z [C·k, C] float32, y [C·k] int64).
    """
    g = np.random.default_rng(seed)
    targets = np.repeat(np.arange(num_classes), per_class)
    log_q = g.normal(0, bias_std, num_classes)
    directions = g.normal(0, 1, (num_classes, dim))
    samples = g.normal(0, 1, (num_classes * per_class, dim)) + 0.6 * directions[targets]
    return ((samples @ directions.T) * 0.35 + log_q[None, :]).astype(np.float32), targets


def bench_prior(options: BenchOptions) -> list[dict[str, Any]]:
    """Exact solver vs GLA's reference mode on seeded synthetic logits: time and final objective
    (book: Method, 'The GLA prior estimator')."""
    from ..priors import fit_prior

    cases = [(100, 20), (300, 3)] if options.quick else [(1000, 20), (8142, 3)]
    caps = options.reference_iterations or ((20, 5) if options.quick else (GLA_ITERATIONS, 100))
    rows = []
    for (num_classes, per_class), cap in zip(cases, caps):
        z, y = synthetic_logits(num_classes, per_class, 0.3, options.seed)
        case = f"C={num_classes}, N={len(y)}"
        exact, t_exact = timed(lambda: fit_prior(z, y, solver="exact", temperature=None))
        reference, t_ref = timed(lambda: fit_prior(z, y, solver="reference", temperature=None, max_iter=cap))
        rows += _prior_rows(case, exact, t_exact, reference, t_ref, cap)
    return rows


def _prior_rows(case: str, exact, t_exact: float, reference, t_ref: float, cap: int) -> list[dict[str, Any]]:
    full = t_ref * GLA_ITERATIONS / cap
    scaled = "" if cap == GLA_ITERATIONS else f"extrapolated from {cap} measured iterations"
    after = f"after {cap} iterations" + ("" if cap == GLA_ITERATIONS else f" (GLA runs {GLA_ITERATIONS})")
    return [row("prior", case, "seconds_exact", t_exact, "s", f"L-BFGS, {exact.evaluations} passes over the logits"),
            row("prior", case, "seconds_reference", full, "s", scaled or f"{GLA_ITERATIONS} float32 descent steps"),
            row("prior", case, "speedup_exact_vs_reference", full / t_exact, "x", scaled),
            row("prior", case, "objective_exact", exact.objective, "nats",
                f"moment residual {exact.moment_residual:.1e}"),
            row("prior", case, "objective_reference", reference.objective, "nats", after),
            row("prior", case, "objective_gap_reference_minus_exact", reference.objective - exact.objective, "nats",
                "≥ 0: the exact solver reaches a lower or equal objective")]


# --------------------------------------------------------------------------- 2. stage 2
def write_synthetic_runs(root: Path, num_samples: int, num_classes: int, num_models: int, seed: int,
                         compressed: bool = True) -> tuple[list[Path], Path]:
    """M cached LA runs and one zero-shot run of a synthetic long-tailed task (stage-2 inputs).

    Training counts follow ``max(5, ⌊1280 e^{−j/(0.18 C)}⌋)`` (the counts of tests/test_losses.py at C = 1000).

    Args:
        root: runs root.
        num_samples: test rows N of the LA runs (class-balanced); the zero-shot run has only a ``val``
            split of N / 2.5 rows (ImageNet-LT: 20,000 for 50,000), at least one per class.
        compressed: True rewrites the arrays deflated (as ``ltlib.cache`` wrote them before it switched to
            stored members); False keeps ``ltlib.cache.save_split``'s stored, memory-mappable members.
    Returns:
        (LA run directories, zero-shot run directory).
    """
    from ..runs import RunSpec, write_cached_run

    g = np.random.default_rng(seed)
    counts = np.maximum(5, (1280 * np.exp(-np.arange(num_classes) / (0.18 * num_classes))).astype(np.int64))
    runs = []
    for m in range(num_models + 1):
        zeroshot = m == num_models
        spec = RunSpec("synthetic", "model0" if zeroshot else f"model{m}", "zeroshot" if zeroshot else "LA")
        splits = {"val": max(num_classes, int(num_samples / 2.5))} if zeroshot else {"test": num_samples}
        outputs = {s: _synthetic_outputs(g, n, num_classes) for s, n in splits.items()}
        runs.append(write_cached_run(root, spec, outputs, counts))
        if compressed:
            for split, out in outputs.items():
                _save_deflated(runs[-1], split, out)
    return runs[:-1], runs[-1]


def _synthetic_outputs(g: np.random.Generator, num_samples: int, num_classes: int) -> SplitOutputs:
    targets = np.arange(num_samples) % num_classes
    logits = g.standard_normal((num_samples, num_classes), dtype=np.float32) * 3.0
    logits[np.arange(num_samples), targets] += 4.0
    return SplitOutputs(logits, targets)


def _save_deflated(run_dir: Path, split: str, outputs: SplitOutputs) -> None:
    """The cache layout of ``ltlib.cache`` with deflated members, which stage 2 has to inflate."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, logits=outputs.logits.astype(np.float32), targets=outputs.targets.astype(np.int64))
    with atomic_path(split_path(run_dir, split)) as tmp:
        tmp.write_bytes(buffer.getvalue())


def bench_stage2(options: BenchOptions, workdir: Path) -> list[dict[str, Any]]:
    """``run_stage2`` at ImageNet-LT and iNat size (M = 3): load + adjust + metrics, per cache format and rule.

    Each model alone and the three together are scored overall, by D- and P-group and by D×P cell. The
    prior is estimated once per case and timed apart. The files were just written, so they are read from
    the page cache (a re-run of stage 2).
    """
    cases = [("ImageNet-LT", 500, 100), ("iNat2018", 600, 300)] if options.quick else \
        [("ImageNet-LT", 50_000, 1000), ("iNat2018", 24_426, 8142)]
    rows = []
    for name, num_samples, num_classes in cases:
        case = f"{name} size: N={num_samples}, C={num_classes}, M=3"
        seconds = {}
        for compressed in (True, False):
            root = workdir / f"{name}-{'compressed' if compressed else 'stored'}"
            runs, zeroshot = write_synthetic_runs(root, num_samples, num_classes, 3, options.seed, compressed)
            seconds[compressed] = _time_stage2(runs, zeroshot)
            shutil.rmtree(root)
        rows += _stage2_rows(case, seconds)
    return rows


_STAGE2_RULES = {"logit_sum": ("logit_sum",), "both rules": ("logit_sum", "prob_mean")}


def _time_stage2(runs: Sequence[Path], zeroshot: Path) -> dict[str, float]:
    from ..stage2 import Stage2Options, estimate_stage2_prior, run_stage2

    prior, seconds = timed(lambda: estimate_stage2_prior(zeroshot))
    out = {"prior": seconds}
    for label, rules in _STAGE2_RULES.items():
        out[label] = timed(lambda: run_stage2(runs, options=Stage2Options(rules=rules),
                                              priors={"zeroshot": prior.prior}))[1]
    return out


def _stage2_rows(case: str, seconds: Mapping[bool, Mapping[str, float]]) -> list[dict[str, Any]]:
    rows = []
    for compressed, label in ((True, "deflate npz"), (False, "stored npz, memory-mapped (ltlib.cache)")):
        for rules in _STAGE2_RULES:
            rows.append(row("stage2", f"{case}, cache: {label}", f"seconds_load_adjust_metrics[{rules}]",
                            seconds[compressed][rules], "s", "each model alone and the 3 together, all groups"))
        rows.append(row("stage2", f"{case}, cache: {label}", "seconds_prior_estimate", seconds[compressed]["prior"],
                        "s", "exact solver on the zero-shot val split, once (not in the figures above)"))
    ratio = seconds[True]["logit_sum"] / seconds[False]["logit_sum"]
    return rows + [row("stage2", case, "speedup_stored_vs_deflate[logit_sum]", ratio, "x", "load + adjust + metrics")]


# --------------------------------------------------------------------------- 3. training throughput
def bench_train(options: BenchOptions, workdir: Path) -> list[dict[str, Any]]:
    """Images/s of one AdaptFormer ViT-B/16 training step at 224 px: our engine vs a LIFT-equivalent loop."""
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = _pipeline_rows(options, workdir)
    for device in devices:
        rows += _train_rows(device, options, workdir)
    if not torch.cuda.is_available():
        for metric in ("images_per_second_lift_equivalent", "images_per_second_ltlib", "speedup_ltlib_vs_lift",
                       "speedup_ltlib_compiled_vs_lift"):
            rows.append(row("train", "GPU, batch 128", metric, NOT_MEASURED, "img/s" if "images" in metric else "x",
                            "not measured: no GPU on this machine"))
    return rows


def _pipeline_rows(options: BenchOptions, workdir: Path) -> list[dict[str, Any]]:
    """The two inputs of the full-scale estimates that a CPU can measure: the decode + augment rate of one
    core and the bytes a training forward saves for backward (:func:`full_scale_estimates`)."""
    images = 8 if options.quick else 64
    dataset = _jpeg_dataset(workdir / "pipeline-images", num_images=images, seed=options.seed)
    dataset[0]  # warm-up
    with torch_threads(1):  # as in a DataLoader worker, which torch pins to one thread
        _, seconds = timed(lambda: [dataset[i] for i in range(len(dataset))])
    model = _bench_model(torch.device("cpu"), options.seed)
    saved = saved_activation_bytes(model, torch.randn(1, 3, 224, 224))
    return [row("train", "data pipeline, 1 CPU core", "images_per_second_per_core", len(dataset) / seconds, "img/s",
                "JPEG 500×375 decode + RandomResizedCrop 224 + flip + normalise (synthetic JPEGs)"),
            row("train", "AdaptFormer ViT-B/16, C = 1000", "saved_activation_mib_per_image", saved / 2**20, "MiB",
                "fp32, tensors autograd keeps for backward (weights excluded)")]


def saved_activation_bytes(model: torch.nn.Module, images: torch.Tensor) -> int:
    """Bytes of the tensors autograd saves for backward in one training forward, excluding parameters.

    Args:
        model: images [B, 3, H, W] → logits; its trainable parameters make autograd record the graph.
        images: one batch.
    Returns:
        Bytes over distinct saved storages (views of one storage are counted once).
    """
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(images).sum()
    return sum(seen.values())


def _train_rows(device: torch.device, options: BenchOptions, workdir: Path) -> list[dict[str, Any]]:
    cuda = device.type == "cuda"
    batch, steps = (128, 20) if cuda else ((2, 1) if options.quick else (4, 3))
    dataset = _jpeg_dataset(workdir / "train-images", num_images=batch * (steps + 1), seed=options.seed)
    lift = _lift_equivalent_throughput(dataset, batch, steps, device, options)
    ours = _engine_throughput(dataset, batch, steps, device, workdir / f"engine-{device.type}", options, None)
    case = f"{'GPU' if cuda else 'CPU'}, batch {batch}, {steps} timed steps"
    note = "bf16 autocast, no GradScaler vs fp16 autocast + GradScaler" if cuda else \
        "CPU: both fp32 (autocast and GradScaler are GPU features), so this compares loop overhead only"
    rows = [row("train", case, "images_per_second_lift_equivalent", lift, "img/s", "LIFT's training loop"),
            row("train", case, "images_per_second_ltlib", ours, "img/s", note),
            row("train", case, "speedup_ltlib_vs_lift", ours / lift, "x", note)]
    if not cuda:
        return rows + [row("train", case, "speedup_ltlib_compiled_vs_lift", NOT_MEASURED, "x",
                           "not measured on CPU: compiling ViT-B/16 would dominate a few-step run")]
    compiled = _engine_throughput(dataset, batch, steps, device, workdir / "engine-compiled", options, "inductor")
    return rows + [row("train", case, "speedup_ltlib_compiled_vs_lift", compiled / lift, "x",
                       "as above plus torch.compile (inductor); compilation happens in the warm-up step")]


def _jpeg_dataset(root: Path, num_images: int, seed: int):
    """ImageNet-sized JPEGs (500×375) through LIFT's training transform (book: Method, 'Test-time crops')."""
    from ..data import ManifestDataset, make_fixture_dataset, read_manifest, train_transform

    per_class = max(1, math.ceil(num_images / 4))
    fixture = make_fixture_dataset(root, num_classes=4, train_counts=(per_class,) * 4, val_per_class=0,
                                   test_per_class=0, image_size=(500, 375), seed=seed)
    return ManifestDataset(read_manifest(fixture.manifests["train"]), fixture.root, train_transform(224))


def _bench_model(device: torch.device, seed: int):
    """AdaptFormer ViT-B/16 for C = 1000 (ImageNet-LT: r = 32), random weights and head."""
    from ..backbones import build_backbone
    from ..model import build_lift_model

    backbone = build_backbone("clip", random_init=True, seed=seed, device=device)
    return build_lift_model(backbone, [f"class {j}" for j in range(1000)], head_init="random", seed=seed)


def _engine_throughput(dataset, batch: int, steps: int, device: torch.device, run_dir: Path,
                       options: BenchOptions, compile_backend: str | None) -> float:
    """Images/s of ``ltlib.engine.train``: one warm-up step, then a resumed run of ``steps`` steps timed from
    its start (data loader start-up included, as for :func:`_lift_equivalent_throughput`)."""
    from ..distributed import DistContext
    from ..engine import train
    from ..losses import build_loss
    from ..recipes import TrainConfig

    cfg = TrainConfig(batch_size=batch, micro_batch_size=batch, max_steps=steps + 1, epochs=1, seed=options.seed,
                      num_workers=_workers(device), checkpoint_every=0, log_every=1000)
    model, loss = _bench_model(device, options.seed), build_loss("LA", np.arange(1000) + 5)
    ctx, kwargs = DistContext(device=device), {"progress": False, "compile_backend": compile_backend}
    train(model, dataset, loss, cfg, run_dir, ctx, stop_after_steps=1, **kwargs)
    return train(model, dataset, loss, cfg, run_dir, ctx, **kwargs).images_per_second


def _lift_equivalent_throughput(dataset, batch: int, steps: int, device: torch.device, options: BenchOptions) -> float:
    """Images/s of LIFT's loop (book: Method, 'Optimisation'):
    shuffled DataLoader, fp16 autocast + GradScaler on CUDA, SGD.

    One warm-up step, then ``steps`` steps timed from a fresh loader's creation.
    """
    from ..losses import build_loss

    model, loss_fn = _bench_model(device, options.seed), build_loss("LA", np.arange(1000) + 5).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    step = lambda images, targets: _lift_step(model, loss_fn, optimizer, scaler, images, targets, device)  # noqa: E731
    _lift_epoch(dataset, batch, 1, device, options.seed, step)
    seen, seconds = timed(lambda: _lift_epoch(dataset, batch, steps, device, options.seed + 1, step))
    return seen / seconds


def _lift_epoch(dataset, batch: int, steps: int, device: torch.device, seed: int, step: Callable) -> int:
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=_workers(device),
                        generator=torch.Generator().manual_seed(seed), pin_memory=device.type == "cuda")
    seen = 0
    for images, targets in itertools.islice(loader, steps):
        step(images, targets)
        seen += len(targets)
    return seen


def _lift_step(model, loss_fn, optimizer, scaler, images, targets, device: torch.device) -> None:
    with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
        loss = loss_fn(model(images.to(device, non_blocking=True)).float(), targets.to(device, non_blocking=True))
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


def _workers(device: torch.device) -> int:
    # On the GPU both loops get LIFT's 8 loader workers; on 2 CPU cores workers would only compete with compute.
    return 8 if device.type == "cuda" else 0


# --------------------------------------------------------------------------- 4. inference cost vs M
def bench_inference(options: BenchOptions) -> list[dict[str, Any]]:
    """Measured FLOPs per test image and images/s for M = 1, 2, 3 ViT-B/16 models, single crop and five-crop TTE.

    The M models share one backbone object (their adapters and heads differ); FLOPs are exact either way and
    the timing differs only by cache effects.
    """
    from ..backbones import build_backbone
    from ..model import build_lift_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backbone = build_backbone("clip", random_init=True, seed=options.seed, device=device)
    names = [f"class {j}" for j in range(1000)]
    models = [build_lift_model(backbone, names, head_init="random", seed=options.seed + m).eval() for m in range(3)]
    rows = []
    for crops in (1, 5):
        for num_models in (1, 2, 3):
            rows += _inference_rows(models[:num_models], crops, device, options)
    return rows


@torch.no_grad()
def _inference_rows(models: Sequence[torch.nn.Module], crops: int, device: torch.device,
                    options: BenchOptions) -> list[dict[str, Any]]:
    num_models = len(models)
    batch = 2 if device.type == "cpu" else 64
    cost = ensemble_cost(models, torch.randn(batch, crops, 3, 224, 224, device=device))
    gflops = cost["gflops_per_image"]
    case = f"M={num_models}, {'five-crop TTE' if crops == 5 else 'single crop'}"
    rows = [row("inference", case, "gflops_per_image", gflops, "GFLOPs", "measured, fp32, 224 px, C = 1000"),
            row("inference", case, "images_per_second", cost["images_per_second"], "img/s",
                f"batch {batch}, fp32 (LIFT's eval)")]
    if num_models in PAPER_GFLOPS:
        paper = PAPER_GFLOPS[num_models]
        rows += [row("inference", case, "paper_gflops", paper, "GFLOPs", "as reported"),
                 row("inference", case, "paper_over_measured", paper / gflops, "x",
                     "what the paper's count corresponds to: see book/full_scale.md")]
    return rows


# --------------------------------------------------------------------------- 5. make book (hook)
def bench_book(timings: Mapping[str, Path] = BOOK_TIMINGS) -> list[dict[str, Any]]:
    """``make book`` wall time per mini-world size, read from the runner's ``timings.csv`` (HOOK, see
    :data:`BOOK_TIMINGS`): the total over executed notebooks and each notebook's seconds."""
    rows = []
    for label, path in timings.items():
        case = f"world {label}{world_size(label)}"
        if not Path(path).is_file():
            rows.append(row("book", case, "seconds_notebooks_total", NOT_MEASURED, "s",
                            f"not measured: {path} not found (run `make book` first)"))
            continue
        table = read_table(path)
        executed = table[table["status"] == "executed"]
        note = f"{len(executed)} of {len(table)} notebooks executed in that run"
        rows.append(row("book", case, "seconds_notebooks_total", executed["seconds"].sum(), "s", note))
        rows += [row("book", case, f"seconds[{r.notebook}]", r.seconds, "s", r.status)
                 for r in table.itertuples()]
    return rows


def world_size(name: str) -> str:
    """``" (40 classes, 24,000 corpus images per model, 4 models)"`` for a mini world config name, else ``""``."""
    from ..miniworld import load_world_config

    try:
        world = load_world_config(name)
    except (ConfigError, FileNotFoundError):
        return ""
    classes = world.parts.num_part_types * world.parts.group_size
    return (f" ({classes} classes, {world.corpus.num_images:,} corpus images per model, "
            f"{len(world.models) + 1} models)")


# --------------------------------------------------------------------------- full-scale estimates
@dataclass(frozen=True)
class GPUAssumptions:
    """The stated GPU and efficiencies behind :func:`full_scale_estimates` (assumptions, not measurements)."""

    name: str = "NVIDIA H100 SXM 80 GB"
    bf16_tflops: float = 989.0      # dense tensor-core peak (datasheet); training runs bf16 autocast
    fp32_tflops: float = 67.0       # fp32 peak without TF32; LIFT and ltlib evaluate in fp32
    train_utilisation: float = 0.4  # assumed fraction of peak reached by a ViT-B/16 training step
    eval_utilisation: float = 0.5   # assumed fraction of fp32 peak reached by evaluation
    loader_cores: int = 8           # data-loading workers (the recipe's num_workers), one core each
    weights_gib: float = 0.6        # the whole CLIP ViT-B/16 (image and text towers, ~150 M parameters) in fp32


ESTIMATE_DATASETS = ("imagenet_lt", "places_lt", "inat2018")
_ADAPTER_FLOPS_PER_R = 4 * 768 * 197 * 12 / 1e9  # GFLOPs per unit of bottleneck r per image (down + up, 12 blocks)


def full_scale_estimates(measured: pd.DataFrame, gpu: GPUAssumptions = GPUAssumptions()) -> pd.DataFrame:
    """Estimated time, memory and disk per stage and dataset from three measured inputs (``bench.csv``).

    Inputs: GFLOPs of one 224-px ViT-B/16 forward (``inference``), one core's JPEG decode + augment rate and
    the activation bytes a training forward saves (``train``). A stage takes the longer of its GPU time
    (FLOPs / (peak · utilisation)) and its data-loading time (images / (rate · cores)). Training FLOPs are
    2× the forward: the frozen backbone's backward computes input gradients only (weight gradients exist
    for the adapters and the head, which are small).

    Returns:
        Rows (dataset, stage, quantity, value, unit, basis); every value is an estimate.
    """
    forward, rate, saved = (measured_value(measured, *FULL_SCALE_INPUTS[k]) for k in ("gflops", "loader_rate",
                                                                                     "saved_mib"))
    rows = []
    for name in ESTIMATE_DATASETS:
        rows += _dataset_estimates(name, forward, rate * gpu.loader_cores, saved, gpu)
    return pd.DataFrame(rows)


# The three measured inputs of :func:`full_scale_estimates`: (benchmark, case, metric) of their rows.
FULL_SCALE_INPUTS = {"gflops": ("inference", "M=1, single crop", "gflops_per_image"),
                     "loader_rate": ("train", "data pipeline, 1 CPU core", "images_per_second_per_core"),
                     "saved_mib": ("train", "AdaptFormer ViT-B/16, C = 1000", "saved_activation_mib_per_image")}


def measured_value(table: pd.DataFrame, benchmark: str, case: str, metric: str) -> float:
    """The value of one row of a bench table.

    Raises:
        ConfigError: no such row (naming it and the benchmark to run).
    """
    match = table[(table["benchmark"] == benchmark) & (table["case"] == case) & (table["metric"] == metric)]
    if match.empty:
        raise ConfigError(f"bench table has no {benchmark} / {case} / {metric} row; run the '{benchmark}' benchmark")
    return float(match["value"].iloc[0])


def dataset_sizes(name: str) -> dict[str, int]:
    """Images per split, epochs and classes of a registry dataset (its config and recipe).

    ``val`` without a shipped list is the class-balanced train subset (``ltlib.tasks``): count_min · C.
    """
    from ..data import load_dataset_config
    from ..recipes import load_recipe

    config = load_dataset_config(name)
    train = config.split("train")
    has_val = "val" in {s.name for s in config.splits}
    val = config.split("val").num_lines if has_val else train.count_min * config.num_classes
    return {"train": train.num_lines, "epochs": load_recipe(config.recipe).epochs, "val": val,
            "test": config.split("test").num_lines, "classes": config.num_classes}


def _dataset_estimates(name: str, forward_c1000: float, images_per_second: float, saved_mib: float,
                       gpu: GPUAssumptions) -> list[dict[str, Any]]:
    from ..adapters import adaptformer_dim

    n = dataset_sizes(name)
    forward = forward_c1000 + _ADAPTER_FLOPS_PER_R * (adaptformer_dim(n["classes"]) - 32) \
        + 2 * 768 * (n["classes"] - 1000) / 1e9  # this dataset's bottleneck and head instead of C = 1000's
    train_images = n["train"] * n["epochs"]
    train = _stage_hours(train_images * 2 * forward, gpu.bf16_tflops * gpu.train_utilisation, train_images,
                         images_per_second)
    evaluation = _stage_hours((n["val"] + 5 * n["test"]) * forward, gpu.fp32_tflops * gpu.eval_utilisation,
                              n["val"] + n["test"], images_per_second)
    memory = gpu.weights_gib + 128 * saved_mib / 2 / 1024  # bf16 autocast keeps roughly half the fp32 bytes
    disk = (n["val"] + n["test"]) * (n["classes"] + 768) * 4 / 2**30
    everything = 3 * (train[0] + 2 * evaluation[0])
    return [_estimate(name, "stage 1: LA training, one backbone", "time", train[0], "h", train[1]),
            _estimate(name, "stage 1: evaluation (val + five-crop test), per run", "time", *evaluation[:1], "h",
                      evaluation[1]),
            _estimate(name, "stage 1: 3 backbones × (zero-shot + LA)", "time", everything, "h",
                      "3 × (training + 2 evaluations)"),
            _estimate(name, "stage 1: LA training, batch 128", "GPU memory", memory, "GiB",
                      "weights + saved activations"),
            _estimate(name, "stage 1: cached logits + features, per run", "disk", disk, "GiB",
                      "float32 val + test, uncompressed")]


def _estimate(dataset: str, stage: str, quantity: str, value: float, unit: str, basis: str) -> dict[str, Any]:
    return {"dataset": dataset, "stage": stage, "quantity": quantity, "value": float(value), "unit": unit,
            "basis": basis}


def _stage_hours(gflops: float, tflops: float, images: int, images_per_second: float) -> tuple[float, str]:
    """(hours, what bounds it): the longer of GPU compute and data loading, which overlap."""
    gpu_hours, loader_hours = gflops / (tflops * 1e3) / 3600, images / images_per_second / 3600
    bound = "GPU compute" if gpu_hours >= loader_hours else "data loading"
    return max(gpu_hours, loader_hours), f"{bound} (GPU {gpu_hours:.2f} h, loading {loader_hours:.2f} h)"


# --------------------------------------------------------------------------- running and writing
def run_benchmarks(out_dir: str | Path, options: BenchOptions = BenchOptions(),
                   runners: Mapping[str, Callable[[BenchOptions], list[dict[str, Any]]]] | None = None) -> pd.DataFrame:
    """Run the selected benchmarks and write ``bench.csv`` (tidy, :data:`BENCH_COLUMNS`) and ``bench.md``;
    with ``train`` and ``inference`` also :data:`ESTIMATES_FILE` (:func:`full_scale_estimates`).

    Args:
        runners: name → rows for the :data:`EXTERNAL_BENCHMARKS` (``ltlib.bench.rates.RUNNERS``); a selected
            one without a runner is reported as not measured.
    Returns:
        The table.
    """
    rows = [_load_row("start")]
    with tempfile.TemporaryDirectory(prefix="ltlib-bench-") as scratch:
        local = {"prior": lambda: bench_prior(options),
                 "stage2": lambda: bench_stage2(options, Path(scratch) / "stage2"),
                 "train": lambda: bench_train(options, Path(scratch) / "train"),
                 "inference": lambda: bench_inference(options),
                 "book": bench_book}
        for name in options.selected:
            print(f"[bench] {name} ...", flush=True)
            rows += local[name]() if name in local else _external_rows(name, options, runners or {})
    rows.append(_load_row("end"))
    table = _with_provenance(pd.DataFrame(rows, columns=["benchmark", "case", "metric", "value", "unit", "note"]))
    write_text(Path(out_dir) / "bench.csv", table.to_csv(index=False))
    write_text(Path(out_dir) / "bench.md", markdown_table(table))
    if {"train", "inference"} <= set(options.selected):  # a subfolder: bench.csv stays the only table at the top
        write_text(Path(out_dir) / ESTIMATES_FILE, full_scale_estimates(table).to_csv(index=False))
    return table


def _external_rows(name: str, options: BenchOptions, runners: Mapping[str, Callable]) -> list[dict[str, Any]]:
    if name not in runners:
        return [row(name, "all", "not_run", NOT_MEASURED, "", "no runner given (ltlib.bench.rates.RUNNERS)")]
    return runners[name](options)


def _load_row(when: str) -> dict[str, Any]:
    """The 1-minute load average: on a shared machine, other jobs slow every timing (ratios less so)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else NOT_MEASURED
    return row("environment", "machine", f"load_average_1min_{when}", load, "runnable processes",
               f"{os.cpu_count()} CPUs; above that, jobs were waiting for a core")


def _with_provenance(table: pd.DataFrame) -> pd.DataFrame:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    table = table.assign(device=describe_device(torch.device("cpu")) if device.type == "cpu" else
                         f"{describe_device(device)} + {describe_device(torch.device('cpu'))}",
                         git_sha=git_sha(), versions=json.dumps(library_versions(), sort_keys=True), timestamp=stamp)
    return table[list(BENCH_COLUMNS)]


def markdown_table(table: pd.DataFrame) -> str:
    """The benchmark table as GitHub markdown, with a provenance line (device, git SHA, time)."""
    first = table.iloc[0] if len(table) else None
    header = "" if first is None else (f"Measured on {first['device']}, git {first['git_sha']}, "
                                       f"{first['timestamp']}.\n\n")
    lines = ["| benchmark | case | metric | value | unit | note |", "|---|---|---|---:|---|---|"]
    lines += [f"| {r.benchmark} | {r.case} | {r.metric} | {format_value(r.value)} | {r.unit} | {r.note} |"
              for r in table.itertuples()]
    return header + "\n".join(lines) + "\n"


def format_value(value: float) -> str:
    """A benchmark value as the tables show it: 3 significant digits, thousands separated, NaN as "not measured"."""
    if not np.isfinite(value):
        return "not measured"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
