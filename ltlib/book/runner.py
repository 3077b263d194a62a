"""The one notebook runner: jupytext sources → parameterised, executed notebooks (papermill).

Used by ``make book`` (``python -m ltlib run-notebooks``) and by the tests. A plan (``notebooks/plan.yaml``)
lists the notebooks and, per setting (``smoke``, ``default``, ``full``), the parameters injected into
each. A notebook is skipped when its executed copy is up to date: same source, same parameters, same
ltlib sources. Every failure names the notebook; the injected-parameters cell's input is hidden in the
book; the wall time of every execution goes into ``timings.csv`` beside the executed notebooks.
"""

from __future__ import annotations

import hashlib
import keyword
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..config import load_yaml
from ..errors import ConfigError, LtlibError
from ..paths import EXECUTED_VARIABLE, PACKAGE_DIR, PROGRESS_VARIABLE, plan_path, work_root
from ..phases import phase
from ..provenance import config_hash, git_sha
from ..storage import atomic_path, read_json, read_table, write_json, write_text

PLAN_PATH = plan_path()
STAMP_SUFFIX = ".stamp.json"


class NotebookError(LtlibError, RuntimeError):
    """A notebook failed; the message names it, the failing cell and the error."""


@dataclass(frozen=True)
class NotebookJob:
    """One notebook to execute: its jupytext ``source``, its plan ``setting`` and resolved ``parameters``.

    Papermill injects two names (:meth:`injected`): ``setting`` and ``overrides`` (the resolved parameters);
    a page turns them into its context with ``ltlib.book.page.open_page``.
    """

    name: str
    source: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    setting: str = ""

    def injected(self) -> dict[str, Any]:
        """What papermill writes into the notebook's injected-parameters cell."""
        return {"setting": self.setting, "overrides": dict(self.parameters)}

    def output_path(self, out_dir: Path) -> Path:
        return Path(out_dir) / f"{self.name}.ipynb"


def load_plan(setting: str, plan_path: Path = PLAN_PATH, only: Sequence[str] | None = None,
              **overrides: Any) -> list[NotebookJob]:
    """The jobs of ``setting`` in plan order; ``overrides`` replace parameters of every notebook.

    A notebook's parameters are, in increasing priority: the setting's, the entry's ``parameters``,
    the entry's ``settings[setting]`` and ``overrides``. ``only`` keeps the named notebooks.

    Raises:
        ConfigError: unknown setting, or a listed notebook source that does not exist.
    """
    check_parameters(overrides, "--set")
    plan = load_yaml(plan_path)
    settings = plan.get("settings", {})
    if setting not in settings:
        raise ConfigError(f"{plan_path}: unknown setting {setting!r}; known: {sorted(settings)}")
    jobs = []
    entries = plan.get("notebooks", [])
    unknown = sorted(set(only or ()) - {e["name"] for e in entries})
    if unknown:
        raise ConfigError(f"{plan_path}: no notebook(s) {unknown} in the plan")
    for entry in entries:
        if only is not None and entry["name"] not in only:
            continue
        source = plan_path.parent / f"{entry['name']}.py"
        if not source.is_file():
            raise ConfigError(f"{plan_path}: notebook {entry['name']!r} has no source {source}")
        if setting in entry.get("skip", []):
            continue
        per_setting = entry.get("settings", {}).get(setting, {})
        params = {**settings[setting], **entry.get("parameters", {}), **per_setting, **overrides}
        jobs.append(NotebookJob(entry["name"], source, params, setting))
    return jobs


def check_parameters(parameters: dict[str, Any], source: str) -> None:
    """Require notebook parameters to be identifiers bound to plain literals (None, bool, int, float, str,
    and lists or string-keyed mappings of them): papermill writes them into a code cell, so anything else
    could run code or fail there.

    Raises:
        ConfigError: naming ``source`` and the offending key.
    """
    for key, value in parameters.items():
        if not (isinstance(key, str) and key.isidentifier() and not keyword.iskeyword(key)):
            raise ConfigError(f"{source}: parameter name {key!r} is not a Python identifier")
        if not _is_literal(value):
            raise ConfigError(f"{source}: parameter {key} = {value!r} is not a plain literal (None, true/false, "
                              "a number, a string, or a list or mapping of those)")


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_literal(v) for k, v in value.items())
    return False


def library_fingerprint() -> str:
    """Hash of every ltlib source and config file: a library change makes every notebook stale."""
    digest = hashlib.sha256()
    root = PACKAGE_DIR
    sources = (p for p in root.rglob("*") if p.suffix in {".py", ".yaml", ".json"})
    for path in sorted(p for p in sources if p.relative_to(root).parts[0] != "_data"):  # notebooks: job_fingerprint
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def job_fingerprint(job: NotebookJob) -> str:
    """What decides a notebook's output: its source text, its parameters and the library."""
    return config_hash({"source": job.source.read_text(encoding="utf-8"), "parameters": job.parameters,
                        "library": library_fingerprint()})


def is_up_to_date(job: NotebookJob, out_dir: Path) -> bool:
    """True when the executed notebook exists and was produced from the same fingerprint."""
    out = job.output_path(out_dir)
    stamp = out.with_suffix(STAMP_SUFFIX)
    return out.is_file() and stamp.is_file() and read_json(stamp).get("fingerprint") == job_fingerprint(job)


def execute(job: NotebookJob, out_dir: Path, *, cwd: Path | None = None, timeout: int | None = None,
            kernel: Prestarted | None = None) -> float:
    """Execute one job into ``out_dir/<name>.ipynb``; returns the wall time in seconds.

    ``cwd`` (default :func:`ltlib.paths.work_root`) is the notebook's working directory. The notebook is
    executed under a temporary name and renamed on success only; its stamp is removed first and written
    last, so a stamp never vouches for a notebook that failed or is half written. ``kernel``: one started
    ahead for this job (:func:`prestart`), used and shut down here; None: papermill starts one.

    Raises:
        NotebookError: naming the notebook, the failing cell and the exception.
    """
    import jupytext

    cwd = Path(cwd or work_root())
    out = job.output_path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = out.with_suffix(STAMP_SUFFIX)
    stamp.unlink(missing_ok=True)  # from here until success nothing vouches for ``out``
    source_nb = out.with_name(f".{job.name}.source.ipynb")
    partial = out.with_name(f".{job.name}.partial.ipynb")  # renamed to ``out`` on success only
    jupytext.write(jupytext.read(job.source), source_nb)
    _kernel_environment(out_dir)
    start = time.perf_counter()
    try:
        _papermill(job, source_nb, partial, cwd, timeout, kernel)
    except BaseException:
        partial.unlink(missing_ok=True)  # a failed or interrupted execution leaves nothing under any name
        raise
    finally:
        source_nb.unlink(missing_ok=True)
        if kernel is not None:
            kernel.shutdown()
    seconds = time.perf_counter() - start
    try:
        publish_table(job, out_dir, cwd)
        hide_injected_parameters(partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    write_json(stamp, {"fingerprint": job_fingerprint(job), "seconds": seconds,
                       "parameters": job.parameters, "git_sha": git_sha()})
    return seconds


def _kernel_environment(out_dir: Path) -> None:
    """What the runner tells a notebook's kernel through the environment."""
    os.environ[EXECUTED_VARIABLE] = str(Path(out_dir).resolve())  # read by ltlib.book.perf inside the kernel
    os.environ.setdefault(PROGRESS_VARIABLE, "1")  # pre-training in the kernel reports to this terminal


def _papermill(job: NotebookJob, source_nb: Path, out: Path, cwd: Path, timeout: int | None,
               kernel: Prestarted | None = None) -> None:
    """Execute ``source_nb`` into ``out`` with ``job``'s parameters (in ``kernel`` when one was started ahead);
    failures become a NotebookError."""
    import papermill

    try:
        extra = {} if kernel is None else {"km": kernel.ready(job)}
        papermill.execute_notebook(str(source_nb), str(out), parameters=job.injected(), kernel_name="python3",
                                   progress_bar=sys.stderr.isatty(), cwd=str(cwd), execution_timeout=timeout,
                                   **extra)
    except papermill.PapermillExecutionError as exc:
        raise NotebookError(f"notebook {job.name} ({job.source}) failed in cell {exc.exec_count}: "
                            f"{exc.ename}: {exc.evalue}") from exc
    except Exception as exc:  # kernel death, timeouts, bad parameters: still name the notebook
        raise NotebookError(f"notebook {job.name} ({job.source}) could not be executed: {exc}") from exc


PRESTART_VARIABLE = "LTLIB_PRESTART"  # "0": no kernel is started ahead of its notebook


@dataclass
class Prestarted:
    """A notebook's kernel started while the previous notebook runs (:func:`prestart`): its start-up, imports
    and fork server (``ltlib.book.page.warm_up``) overlap that notebook instead of following it.

    Attributes:
        name: the job it was started for; manager, client: jupyter_client's; environment: the runner's
        environment when it started (:meth:`ready` brings the kernel's up to date); warm_up: its request's id.
    """

    name: str
    manager: Any
    client: Any
    environment: dict[str, str]
    warm_up: str  # the message id of the warm-up request

    def ready(self, job: NotebookJob, timeout: float = 600.0) -> Any:
        """Wait for the warm-up, give the kernel the runner's environment as it is now (the enclosing phase,
        paths), and return its kernel manager for papermill.

        Raises:
            NotebookError: the kernel was started for another job, or its warm-up or update failed.
        """
        if job.name != self.name:
            raise NotebookError(f"notebook {job.name}: the kernel started ahead was for {self.name}")
        self._check(job, "warm up", self._reply(self.warm_up, timeout))
        changed = {k: v for k, v in os.environ.items() if self.environment.get(k) != v}
        removed = sorted(set(self.environment) - set(os.environ))
        code = f"import os\nos.environ.update({changed!r})\nfor _k in {removed!r}:\n    os.environ.pop(_k, None)\n"
        self._check(job, "take the runner's environment", self._reply(
            self.client.execute(code, silent=True, store_history=False), timeout))
        return self.manager

    def _reply(self, msg_id: str, timeout: float) -> dict:
        """The kernel's reply to request ``msg_id`` (earlier replies on the shell channel are skipped)."""
        while True:
            reply = self.client.get_shell_msg(timeout=timeout)
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

    @staticmethod
    def _check(job: NotebookJob, what: str, content: dict) -> None:
        if content.get("status") != "ok":
            raise NotebookError(f"notebook {job.name}: its kernel, started ahead, failed to {what}: "
                                f"{content.get('ename')}: {content.get('evalue')}")

    def shutdown(self) -> None:
        """Stop the client's channels and the kernel (idempotent)."""
        self.client.stop_channels()
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=True)


def prestart(job: NotebookJob, cwd: Path | None = None) -> Prestarted:
    """Start ``job``'s kernel now, in ``cwd`` (default :func:`ltlib.paths.work_root`), and send it its warm-up
    (``ltlib.book.page.warm_up``) without waiting: it runs while the caller executes another notebook.
    Nothing it does changes a result (the notebook sets its threads, world and tables itself)."""
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(Path(cwd or work_root())))
    client = manager.client()
    client.start_channels()
    request = client.execute(f"from ltlib.book.page import warm_up\nwarm_up({job.name!r})", silent=True,
                             store_history=False)
    return Prestarted(job.name, manager, client, dict(os.environ), request)


def prestart_enabled() -> bool:
    """Kernels are started ahead unless ``$LTLIB_PRESTART`` is ``0``."""
    return os.environ.get(PRESTART_VARIABLE, "1").strip() != "0"


DOWNLOADS = "downloads"  # <out_dir parameter>/downloads/<notebook>/: further files a page offers for download


def publish_table(job: NotebookJob, out_dir: Path, cwd: Path) -> Path | None:
    """Copy the notebook's result table, ``<out_dir parameter>/tables/<name>.csv``, and the files it wrote under
    ``<out_dir parameter>/downloads/<name>/`` to ``<out_dir>/data/`` beside the executed notebook, where its page
    links them for download; returns the table's copy, None when it wrote no table."""
    import shutil

    if not job.parameters.get("out_dir"):
        return None
    results = Path(cwd) / str(job.parameters["out_dir"])
    table = results / "tables" / f"{job.name}.csv"
    extra = sorted((results / DOWNLOADS / job.name).glob("*.csv"))
    published = None
    for source in ([table] if table.is_file() else []) + extra:
        target = Path(out_dir) / "data" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        published = published or (target if source == table else None)
    return published


def hide_injected_parameters(path: Path) -> None:
    """Tag the executed notebook's cells for the book.

    Papermill's injected-parameters cell (the values this run used) gets ``hide-input``: folded, one click
    away. The notebook's own ``parameters`` cell holds defaults the injected cell overrode, so it gets
    ``remove-cell`` rather than showing values this run did not use. Every other code cell gets
    ``hide-input`` too: the pages read as a report; the calls into ``ltlib`` stay one click away.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    injected = any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        wanted = "remove-cell" if injected and "parameters" in tags else "hide-input"
        if wanted not in tags:
            tags.append(wanted)
    write_text(path, nbformat.writes(nb))


def _log(message: str) -> None:
    """The runner's progress line: flushed at once, so a build without a terminal (``make book | tee``, CI)
    streams it instead of holding it in a pipe's buffer."""
    print(message, flush=True)


@phase("notebooks")
def run_all(jobs: list[NotebookJob], out_dir: Path, *, force: bool = False, log=_log) -> pd.DataFrame:
    """Execute ``jobs`` in order (skipping up-to-date ones unless ``force``) and record timings.

    Progress is one line per notebook when it starts and when it ends, numbered ``k/n``, with the
    elapsed time and an estimate of the time left from the previous build's ``timings.csv`` (when there
    is one); papermill's cell bar is added on a terminal only.

    Returns:
        One row per job: notebook, status (``executed`` / ``up-to-date``), seconds, git SHA; also
        written to ``out_dir/timings.csv``.
    """
    previous = previous_seconds(out_dir)  # read before this build overwrites it
    pending = [job.name for job in jobs if force or not is_up_to_date(job, out_dir)]
    queue = [job for job in jobs if job.name in pending] if prestart_enabled() else []
    rows, start, ahead = [], time.perf_counter(), None
    _kernel_environment(out_dir)
    try:
        for k, job in enumerate(jobs, start=1):
            tag = f"[runner] {k}/{len(jobs)} {job.name}"
            if job.name not in pending:
                stamp = read_json(job.output_path(out_dir).with_suffix(STAMP_SUFFIX))
                rows.append(_timing_row(job, "up-to-date", stamp.get("seconds", float("nan"))))
                log(f"{tag}: up to date, skipped")
            else:
                log(f"{tag}: executing ({time_left(pending[pending.index(job.name):], previous)}) "
                    f"with {job.parameters}")
                kernel, ahead = _next_kernels(job, queue, ahead)
                with phase("notebook", detail=job.name):
                    rows.append(_timing_row(job, "executed", execute(job, out_dir, kernel=kernel)))
                left = time_left(pending[pending.index(job.name) + 1:], previous)
                log(f"{tag}: done in {rows[-1]['seconds']:.1f} s ({time.perf_counter() - start:.0f} s elapsed; "
                    f"{left})")
            # written after every notebook, so a later notebook (the performance page) sees this build's times
            write_text(Path(out_dir) / "timings.csv", pd.DataFrame(rows).to_csv(index=False))
    finally:
        if ahead is not None:  # a failed or interrupted build leaves no kernel running
            ahead.shutdown()
    return pd.DataFrame(rows)


def _next_kernels(job: NotebookJob, queue: list[NotebookJob],
                  ahead: Prestarted | None) -> tuple[Prestarted | None, Prestarted | None]:
    """(the kernel started ahead for ``job``, if any; the kernel started now for the job after it in
    ``queue``, if any). Without prestart (empty queue) both are None."""
    kernel = ahead if ahead is not None and ahead.name == job.name else None
    if ahead is not None and kernel is None:
        ahead.shutdown()
    position = next((i for i, queued in enumerate(queue) if queued.name == job.name), None)
    following = queue[position + 1] if position is not None and position + 1 < len(queue) else None
    return kernel, prestart(following) if following is not None else None


def previous_seconds(out_dir: Path) -> dict[str, float]:
    """Seconds per notebook in ``out_dir/timings.csv`` of the previous build; empty when there is none.

    A file that cannot be read gives no estimate rather than stopping the build: it only feeds the ETA.
    """
    path = Path(out_dir) / "timings.csv"
    try:
        table = read_table(path)
        pairs = zip(table["notebook"].astype(str), pd.to_numeric(table["seconds"], errors="coerce"))
    except (OSError, KeyError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return {}
    return {name: float(seconds) for name, seconds in pairs if np.isfinite(seconds) and seconds >= 0}


def time_left(names: Sequence[str], previous: dict[str, float]) -> str:
    """The estimate of the time ``names`` will take, from ``previous`` (:func:`previous_seconds`), as text.

    Returns:
        e.g. ``"about 330 s left by the previous build's times"``, with ``"+ 2 notebook(s) not timed
        before"`` when some are missing from it, or ``"nothing left"``.
    """
    if not names:
        return "nothing left"
    known = [previous[name] for name in names if name in previous]
    unknown = len(names) - len(known)
    if not known:
        return f"time left unknown: {unknown} notebook(s) not timed before"
    extra = f" + {unknown} notebook(s) not timed before" if unknown else ""
    return f"about {sum(known):.0f} s left by the previous build's times{extra}"


def _timing_row(job: NotebookJob, status: str, seconds: float) -> dict[str, Any]:
    return {"notebook": job.name, "status": status, "seconds": round(float(seconds), 2),
            "parameters": config_hash(job.parameters), "git_sha": git_sha()}
