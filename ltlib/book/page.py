"""One call sets a notebook page up: its parameters, threads, world or dataset, study and results table.

A page's parameters cell holds the plan setting (``notebooks/plan.yaml``) and the ``overrides`` the runner
injects; :func:`open_page` resolves them and returns a :class:`Page`, so that every notebook starts with
the same two lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from ..results import ResultsTable
from .runner import load_plan

# What each page opens beyond its parameters: the run grid of its study (``ltlib.miniworld.experiments``),
# the mini world itself, or its config alone (the confounder study trains its own CNNs).
STUDY_PAGES = {"01_imbalance": "imbalance_jobs", "03_main_tables": "main_table_jobs", "08_factorial": "factorial_jobs"}
WORLD_PAGES = ("00_miniworld",)
WORLD_CONFIG_PAGES = ("02_confounder", "07_gla_regimes")
POOL_PAGES = (*STUDY_PAGES, *WORLD_PAGES, *WORLD_CONFIG_PAGES)  # pages whose runs go through worker pools
LOCATION_PARAMETERS = ("out_dir", "runs_root")  # where a page's results go, not what they are
TABLE_PAGES = ("00_miniworld", "01_imbalance", "02_confounder", "03_main_tables", "07_gla_regimes", "08_factorial")


@dataclass(frozen=True, eq=False)
class Page:
    """A notebook page's context.

    Attributes:
        notebook: its name; setting: the plan setting; parameters: the resolved plan parameters (scale, world,
            dataset, seeds, out_dir, runs_root).
        studies: one ``ltlib.miniworld.experiments.Study`` per independent world (the plan's ``worlds``: world
            seeds) of a study page, runs trained or reused; empty elsewhere. ``study`` is the first.
        world: the mini ``World`` (study pages at mini scale and the world page), else None.
        world_config: the mini world's ``WorldConfig`` (mini scale), else None.
        table: the page's ``ResultsTable`` (pages that write results), else None.
    """

    notebook: str
    setting: str
    parameters: Mapping[str, Any]
    studies: tuple = ()
    world: Any = None
    world_config: Any = None
    table: ResultsTable | None = None

    @property
    def study(self) -> Any:
        """The first world's study (the one the page's figures show); None on pages without a study."""
        return self.studies[0] if self.studies else None

    @property
    def world_seeds(self) -> list[int]:
        """The independent worlds' seeds (the replicates of every world-level claim)."""
        if self.studies:
            return [s.world_seed for s in self.studies]
        worlds = self.parameters.get("worlds")
        return list(worlds) if worlds else [int(self.world_config.seed)] if self.world_config is not None else [-1]

    @property
    def as_planned(self) -> bool:
        """True when the page runs its setting's own plan parameters (locations aside): no ``--set`` changed what
        it computes, so the committed builds of that setting (the alternative-kernel verdicts, the sensitivity
        grid) compare with it."""
        planned = resolve_parameters(self.notebook, self.setting or "default")
        return _results_parameters(planned) == _results_parameters(self.parameters)

    @property
    def compares_with_committed_builds(self) -> bool:
        """True when this page is the default setting run as planned: the build the committed alternative-kernel
        verdicts and sensitivity grid were made of, so their notes and the rounding check apply to it."""
        return self.setting == "default" and self.as_planned

    def check_rounding(self, report: Any) -> Any:
        """``report`` (``ltlib.book.report.evaluate``'s lines) with firmness also requiring the same verdict in the
        committed builds made with other CPU kernels (``report.rounding_check``; book: Reliability); unchanged
        unless :attr:`compares_with_committed_builds`."""
        if not self.compares_with_committed_builds:
            return report
        from ..paths import rounding_builds
        from .report import rounding_check

        return rounding_check(report, rounding_builds(), torch.backends.cpu.get_cpu_capability())

    @property
    def scale(self) -> str:
        return str(self.parameters["scale"])

    @property
    def seeds(self) -> list[int]:
        return list(self.parameters["seeds"])

    @property
    def out_dir(self) -> Path:
        return Path(self.parameters["out_dir"])

    @property
    def label(self) -> str:
        """The world or dataset name the page's result rows carry."""
        return self.study.label if self.study is not None else str(self.parameters["world"] or
                                                                    self.parameters["dataset"])


def warm_up(notebook: str) -> None:
    """What a notebook's kernel does before its notebook runs, when the runner starts it ahead
    (``ltlib.book.runner.prestart``): import what every page imports and, for a page whose runs go through
    worker pools (:data:`POOL_PAGES`, more than one worker), start the fork server. Nothing here changes a
    result: the page sets its threads, world and tables itself."""
    import matplotlib.pyplot  # noqa: F401  (with seaborn: the pages' figures)
    import seaborn  # noqa: F401

    from . import analysis, glue, plots, report  # noqa: F401
    from ..parallel import default_workers, start_fork_server

    if notebook in POOL_PAGES and default_workers() > 1:
        start_fork_server()


def _results_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in parameters.items() if k not in LOCATION_PARAMETERS}


def resolve_parameters(notebook: str, setting: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The plan's parameters of ``notebook`` at ``setting`` with ``overrides`` on top (``runner.load_plan``)."""
    [job] = load_plan(setting, only=[notebook], **dict(overrides or {}))
    return dict(job.parameters)


def open_page(notebook: str, setting: str = "default", overrides: Mapping[str, Any] | None = None, *,
              threads: int = 1, workers: int | None = None) -> Page:
    """Resolve a page's parameters and open what it analyses.

    Args:
        notebook: the page's name in the plan (``01_imbalance``).
        setting, overrides: what the parameters cell holds (the runner injects both).
        threads: torch threads in the page's process (tiny models: one is fastest on a shared machine).
        workers: worker processes for the study's runs (default: ``ltlib.parallel``'s).
    Returns:
        :class:`Page`; study pages have their runs trained or reused, the world page its world loaded (not
        pre-trained: the page times that step itself).
    """
    params = resolve_parameters(notebook, setting or "default", overrides)
    torch.set_num_threads(threads)
    studies, world, config = (), None, None
    if notebook in STUDY_PAGES:
        studies = tuple(_open_studies(params, STUDY_PAGES[notebook], workers))
        world = studies[0].world
    elif notebook in WORLD_PAGES:
        from ..miniworld import load_world
        world = load_world(params["world"])
    if world is not None:
        config = world.config
    elif notebook in WORLD_CONFIG_PAGES or (notebook in STUDY_PAGES and params["scale"] == "mini"):
        from ..miniworld import load_world_config
        config = load_world_config(params["world"] or "default")
    page = Page(notebook, setting, params, studies, world, config)
    return _with_table(page) if notebook in TABLE_PAGES else page


def _open_studies(params: Mapping[str, Any], jobs_for: str, workers: int | None):
    from ..miniworld import experiments

    return experiments.open_studies(params["scale"], params["world"], params["dataset"], params["seeds"],
                                    params["runs_root"], jobs_for=getattr(experiments, jobs_for), workers=workers,
                                    world_seeds=params.get("worlds") or None,
                                    epochs_factor=params.get("finetune_epochs_factor", 1))


def _with_table(page: Page) -> Page:
    world_seed = -1 if page.scale == "full" or page.world_config is None else int(page.world_config.seed)
    label = page.world_config.name if page.notebook in WORLD_CONFIG_PAGES else page.label
    table = ResultsTable(notebook=page.notebook, scale=page.scale, world=label, out_dir=page.out_dir / "tables",
                         world_seed=world_seed)
    return Page(page.notebook, page.setting, page.parameters, page.studies, page.world, page.world_config, table)
