"""Every location ltlib reads or writes, in one place, each with its environment override.

Two kinds of location:

- **Package data**: the shipped split files (``data_manifests/``), the notebooks and their plan
  (``notebooks/``). The package reaches them through ``importlib.resources`` as ``ltlib/_data/manifests``
  and ``ltlib/_data/notebooks``: in a source checkout these are symbolic links to the two top-level
  folders, and a wheel (``pip install .`` or ``pip install git+<repo>``) holds copies of their files,
  so the same code finds them in both.
- **Repository locations** (a source checkout): the executed notebooks of the book and the committed
  benchmark tables, one level above ``ltlib/``. From an installed wheel there is no repository: these
  default to the current directory instead (:func:`work_root`).
- **Working locations**: the cache (pre-trained mini models, pinned SHA-256 of user lists), stage-1
  runs and result tables. One cache root, ``$LTLIB_CACHE`` or ``~/.cache/ltlib``; the Makefile points
  it into the clone (``.cache/ltlib``) so that a fresh clone starts from a clean cache.

Relative defaults (``runs``, ``results``) are relative to the current directory, as a command-line
user expects; the book's notebooks run with the repository as their working directory.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from .errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent

CACHE_VARIABLE = "LTLIB_CACHE"
RUNS_VARIABLE = "LTLIB_RUNS"
RESULTS_VARIABLE = "LTLIB_RESULTS"
EXECUTED_VARIABLE = "LTLIB_EXECUTED_DIR"  # set by the runner: where the running build's notebooks go
PROGRESS_VARIABLE = "LTLIB_PROGRESS"  # "1": long steps (mini-world pre-training) report progress on stderr


def _from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else default


def cache_root() -> Path:
    """``$LTLIB_CACHE`` or ``~/.cache/ltlib``: pre-trained mini models and pinned list checksums."""
    return _from_env(CACHE_VARIABLE, Path.home() / ".cache" / "ltlib")


def runs_root() -> Path:
    """``$LTLIB_RUNS`` or ``runs``: stage-1 run folders (one per task, backbone, method, seed, recipe)."""
    return _from_env(RUNS_VARIABLE, Path("runs"))


def results_root() -> Path:
    """``$LTLIB_RESULTS`` or ``results``: result tables, stage-2 scores, benchmark output."""
    return _from_env(RESULTS_VARIABLE, Path("results"))


def in_checkout() -> bool:
    """True when ltlib runs from a source checkout (``pyproject.toml`` beside the package), not a wheel."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "notebooks").is_dir()


def work_root() -> Path:
    """Where the book's outputs go: the checkout's root, or the current directory for an installed wheel."""
    return REPO_ROOT if in_checkout() else Path.cwd()


def package_data(name: str) -> Path:
    """A folder or file of the package data (``ltlib/_data/<name>``) as a file-system path.

    Args:
        name: ``"manifests"`` or ``"notebooks"`` (or a path below them).
    Returns:
        The resolved path (in a checkout, the top-level folder the link points to).
    Raises:
        ConfigError: ltlib is installed in a form whose data are not plain files (e.g. a zip archive).
    """
    resource = resources.files("ltlib").joinpath("_data", *name.split("/"))
    if not isinstance(resource, Path):
        raise ConfigError(f"ltlib's package data {name!r} is not on the file system ({resource!r}); "
                          "install ltlib as a regular (unzipped) package")
    return resource.resolve()


def manifests_dir() -> Path:
    """The shipped split files of Places-LT, ImageNet-LT and iNaturalist 2018, with their checksums."""
    return package_data("manifests")


def notebooks_dir() -> Path:
    """The jupytext sources of the book's notebooks."""
    return package_data("notebooks")


def plan_path() -> Path:
    """The runner's plan: the notebooks in order and the parameters of each setting."""
    return notebooks_dir() / "plan.yaml"


def executed_dir() -> Path:
    """Where the running build writes executed notebooks and ``timings.csv`` (default ``book/executed``)."""
    return _from_env(EXECUTED_VARIABLE, book_executed_dir())


def book_executed_dir() -> Path:
    """The executed notebooks that the book's table of contents names."""
    return work_root() / "book" / "executed"


def smoke_executed_dir() -> Path:
    """Where ``make bench`` writes the smoke-scale build whose timings the performance page shows."""
    return work_root() / "results" / "executed-smoke"


def benchmarks_dir() -> Path:
    """The committed benchmark tables (``make bench``) that the performance page reads."""
    return work_root() / "book" / "data" / "benchmarks"


def profile_dir() -> Path:
    """The committed phase profile of a ``make book`` (``python -m ltlib.bench.profile … --out``) that the
    performance page reads; apart from :func:`benchmarks_dir`, whose every CSV is a benchmark table."""
    return work_root() / "book" / "data" / "profile"


def alternative_kernel_verdicts_path() -> Path:
    """The committed report verdicts of the default build with torch's non-vectorised kernels (book: Reliability)."""
    return work_root() / "book" / "data" / "verdicts-aten-default.csv"


def rounding_builds() -> dict[str, Path]:
    """The committed report verdicts of the default build per CPU kernel set it was made with (as
    ``torch.backends.cpu.get_cpu_capability()`` names it): the reference build ran on this project's build
    machine with torch's AVX-512 kernels, the other with ``ATEN_CPU_CAPABILITY=default`` (book: Reliability)."""
    return {"AVX512": work_root() / "book" / "data" / "verdicts.csv", "DEFAULT": alternative_kernel_verdicts_path()}


def sensitivity_verdicts_path() -> Path:
    """The committed verdicts of the sensitivity grid (``make sensitivity``) that its page and the report read."""
    return work_root() / "book" / "data" / "sensitivity" / "verdicts.csv"


def regime_probes_path() -> Path:
    """The committed regime probes (``make regime-probes``, ``ltlib.book.regime_probes``) the world page reads."""
    return work_root() / "book" / "data" / "regime" / "probes.csv"
