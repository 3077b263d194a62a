"""The reproduction report: every claim of the registry (``configs/claims/registry.yaml``), the paper's number,
ours with its interval over independent worlds, the verdict of ``ltlib.book.registry.decide`` and the
verdict in each world, computed from the result tables (``ltlib.results``), never typed.

Each claim is measured (``ltlib.book.claims.MEASURES``) once per *variant*: each prior source it lists
(estimate, truth, reference) and, for a group-wise claim, each calibration (the paper's fixed rule and a τ
chosen on the validation split). The first variant (the model's own estimate at the fixed rule: what the
paper does) is the claim's headline; a verdict that changes across its variants says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from .claims import MEASURES, REQUIREMENTS
from .registry import (INCONCLUSIVE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, SINGLE_RUN, ClaimSpec, Verdict,
                       as_claimed, decide)
from ..storage import read_table

UNINFORMATIVE, OTHER_SCALE = "uninformative", "full scale only"
VERDICT_ORDER = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, UNINFORMATIVE, SINGLE_RUN, NOT_MEASURED)
CALIBRATION_NAMES = {"": "fixed rule", "val": "τ on validation"}


def variants(spec: ClaimSpec) -> list[tuple[str, str]]:
    """(prior source, calibration) pairs a claim is measured at, the headline first."""
    priors = list(spec.prior) or [""]
    calibrations = ["", "val"] if spec.calibration == "both" else [""]
    return [(p, c) for p in priors for c in calibrations]


def world_marks(values: pd.Series, spec: ClaimSpec) -> str:
    """Each world's own reading, e.g. ``w0 ✓ 0.21 · w1 ✗ -0.05``: ✓ on the claimed side (inside the margin
    for a claim of no effect), ✗ otherwise; no marks for a descriptive claim."""
    marks = [""] * len(values) if spec.direction == "none" else \
        ["✓ " if ok else "✗ " for ok in as_claimed(values.to_numpy(), spec)]
    return " · ".join(f"w{int(w)} {m}{x:.3g}" for (w, x), m in zip(values.items(), marks))


def evaluate(specs: Sequence[ClaimSpec], rows: pd.DataFrame, scale: str = "mini") -> pd.DataFrame:
    """One line per claim and variant: the measured values per world, the verdict and whether it is firm.

    Columns: key, statement, artefact, paper, role, direction, unit, prior_source, calibration, headline
    (the claim's first variant), verdict, firm, mean, low, high, n_worlds, per_world (JSON), worlds (the
    per-world marks), note (a failed precondition, or a verdict that changes across variants).
    """
    lines = []
    for spec in specs:
        requirement = REQUIREMENTS.get(spec.key, lambda _: (True, ""))(rows)
        for i, (prior, calibration) in enumerate(variants(spec)):
            values = MEASURES[spec.key](rows, prior, calibration) if spec.key in MEASURES else pd.Series(dtype=float)
            values = values.dropna().sort_index()
            result = decide(values.to_numpy(dtype=float), spec)
            verdict = _applicable(spec, scale, result.verdict, requirement)
            lines.append(_line(spec, prior, calibration, i == 0, result, verdict, values, requirement))
    report = pd.DataFrame(lines)
    return _note_variant_changes(report)


FIRST_WORLDS_COLUMNS = ("label", "worlds_used", "key", "statement", "role", "verdict", "firm", "mean", "low",
                        "high", "n_worlds", "per_world")


def verdicts_over_first_worlds(specs: Sequence[ClaimSpec], rows: pd.DataFrame, counts: Sequence[int],
                               scale: str = "mini") -> pd.DataFrame:
    """Each headline verdict judged on the first ``n`` worlds (lowest seeds) of ``rows``, for each ``n`` in
    ``counts``: how a verdict moves as independent worlds are added (book: Reliability). Rows of no world
    (``world_seed`` < 0) are kept in every subset. ``firm`` is the per-world part of firmness only: the rounding
    check (:func:`rounding_check`) needs a build of the same tables with other CPU kernels.

    Returns:
        The headline lines of :func:`evaluate` with ``worlds_used``, for every ``n`` up to the worlds present.
    """
    seeds = sorted(int(s) for s in rows["world_seed"].unique() if s >= 0)
    frames = []
    for n in counts:
        if n > len(seeds):
            continue
        subset = rows[rows["world_seed"].isin(seeds[:n]) | (rows["world_seed"] < 0)]
        report = evaluate(specs, subset, scale)
        frames.append(report[report.headline].assign(worlds_used=n))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _applicable(spec: ClaimSpec, scale: str, verdict: str, requirement: tuple[bool, str]) -> str:
    if spec.scale == "full" and scale == "mini":
        return OTHER_SCALE
    if verdict in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE) and not requirement[0]:
        return UNINFORMATIVE
    return verdict


def _line(spec: ClaimSpec, prior: str, calibration: str, headline: bool, result: Verdict, verdict: str,
          values: pd.Series, requirement: tuple[bool, str]) -> dict:
    firm = bool(result.firm and verdict == result.verdict)
    note = "" if requirement[0] else f"precondition failed: {spec.requires} ({requirement[1]})"
    return {"key": spec.key, "statement": spec.statement, "artefact": spec.artefact, "paper": spec.paper,
            "role": spec.role, "direction": spec.direction, "unit": spec.unit, "prior_source": prior,
            "calibration": calibration, "headline": headline, "verdict": verdict, "firm": firm,
            "mean": result.mean, "low": result.low, "high": result.high, "n_worlds": result.worlds,
            "per_world": json.dumps([round(float(v), 6) for v in values.to_numpy()]),
            "worlds": world_marks(values, spec), "note": note}


def _note_variant_changes(report: pd.DataFrame) -> pd.DataFrame:
    """Add to each headline line a note when another variant of the same claim reaches another verdict."""
    report = report.copy()
    for key, part in report.groupby("key", sort=False):
        head = part[part.headline].iloc[0]
        others = part[~part.headline & (part.verdict != head.verdict)]
        if len(others):
            changed = ", ".join(f"{_variant_name(r.prior_source, r.calibration)}: {r.verdict}"
                                for r in others.itertuples())
            _append_note(report, head.name, f"verdict changes with the variant ({changed})")
    return report


def _append_note(report: pd.DataFrame, index, text: str) -> None:
    """Append ``text`` to the note of line ``index`` of ``report`` (in place), after any note it has."""
    report.loc[index, "note"] = "; ".join(t for t in (report.loc[index, "note"], text) if t)


def add_notes(report: pd.DataFrame, notes: dict[str, str]) -> pd.DataFrame:
    """``report`` with ``notes[key]`` appended to the note of that claim's headline line (e.g. the sensitivity
    grid's ``ltlib.book.sensitivity.grid_notes``)."""
    report = report.copy()
    for index in report.index[report.headline & report.key.isin(list(notes))]:
        _append_note(report, index, notes[report.loc[index, "key"]])
    return report


KERNEL_NAMES = {"DEFAULT": "torch's non-vectorised kernels", "AVX2": "torch's AVX2 kernels",
                "AVX512": "torch's AVX-512 kernels"}


def rounding_check(report: pd.DataFrame, builds: Mapping[str, str | Path], running: str) -> pd.DataFrame:
    """Firm also means "the same verdict under other float rounding" (book: Reliability): ``report`` checked
    against the committed builds of the same setting made with other CPU kernels.

    Every line (claim and variant) whose verdict differs in such a build loses ``firm`` and gets a note naming
    that build's verdict and interval; a line absent from such a build (a claim added since) cannot be checked
    and loses ``firm`` with a note saying so. Only the verdicts of those builds are read, never their ``firm``,
    so a rebuild reproduces its own committed file. A build file that does not exist is skipped.

    Args:
        report: :func:`evaluate`'s lines; builds: kernel set (``torch.backends.cpu.get_cpu_capability()``,
            e.g. ``"AVX512"``, ``"DEFAULT"``) → that build's report ``verdicts.csv``; running: the kernel set
            of this process (its own build is not compared with itself).
    Returns:
        ``report`` with ``firm`` and ``note`` updated.
    """
    report = report.copy()
    for kernels, path in builds.items():
        if kernels.upper() == running.upper() or not Path(path).is_file():
            continue
        name = KERNEL_NAMES.get(kernels.upper(), f"torch's {kernels} kernels")
        other = read_table(path, ("key", "prior_source", "calibration", "verdict"))
        other = other.set_index(["key", "prior_source", "calibration"])
        for index, line in report.iterrows():
            where = (line.key, line.prior_source or "", line.calibration or "")
            if where not in other.index:
                report.loc[index, "firm"] = False
                _append_note(report, index, f"not built with {name}: firmness not checked there")
                continue
            alt = other.loc[where]
            if alt.verdict != line.verdict:
                report.loc[index, "firm"] = False
                interval = (f": {float(alt['mean']):+.3g} [{float(alt.low):+.3g}, {float(alt.high):+.3g}]"
                            if pd.notna(alt["mean"]) else "")
                _append_note(report, index, f"with {name} (another CPU's rounding): {alt.verdict}{interval}")
    return report


def _variant_name(prior: str, calibration: str) -> str:
    parts = [f"prior {prior}" if prior else "", CALIBRATION_NAMES[calibration] if calibration else ""]
    return ", ".join(p for p in parts if p) or "headline"


# ----------------------------------------------------------------------------- what the page shows
def headline_table(report: pd.DataFrame, role: str | None = None) -> pd.DataFrame:
    """The headline line of every claim (optionally of one role), formatted for the page."""
    lines = report[report.headline & ((report.role == role) if role else True)]
    return pd.DataFrame({
        "artefact": lines.artefact, "claim": lines.statement, "paper": lines.paper,
        "measured (mean [95 % CI] over worlds)": [_format(r) for r in lines.itertuples()],
        "verdict": lines.verdict, "firm": lines.firm.map({True: "firm", False: ""}),
        "each world": lines.worlds.str.replace(" · ", "<br>", regex=False), "note": lines.note})


def variant_table(report: pd.DataFrame) -> pd.DataFrame:
    """Every claim with several variants, one line per variant (prior source × calibration)."""
    multi = report.groupby("key").key.transform("size") > 1
    lines = report[multi]
    return pd.DataFrame({
        "claim": lines.statement, "prior": lines.prior_source.replace("", "—"),
        "calibration": lines.calibration.map(CALIBRATION_NAMES),
        "measured": [_format(r) for r in lines.itertuples()], "verdict": lines.verdict,
        "firm": lines.firm.map({True: "firm", False: ""}),
        "each world": lines.worlds.str.replace(" · ", "<br>", regex=False)})


def summary_counts(report: pd.DataFrame) -> dict[str, int]:
    """Counts over the headline lines of role ``claim``: each verdict, and how many decisive ones are firm."""
    claims = report[report.headline & (report.role == "claim")]
    counts = {v: int((claims.verdict == v).sum()) for v in (*VERDICT_ORDER, OTHER_SCALE)}
    counts["claims"] = len(claims)
    counts["firm"] = int(claims.firm.sum())
    counts["firm_reproduced"] = int((claims.firm & (claims.verdict == REPRODUCED)).sum())
    counts["firm_not_reproduced"] = int((claims.firm & (claims.verdict == NOT_REPRODUCED)).sum())
    return counts


def per_world_counts(report: pd.DataFrame) -> pd.DataFrame:
    """For each world, how many headline claims read on the claimed side (✓) and how many not (✗): the
    verdict each world would give on its own, without an interval."""
    claims = report[report.headline & (report.role == "claim")]
    rows = []
    for marks in claims.worlds:
        for item in filter(None, marks.split(" · ")):
            world, *rest = item.split(" ")
            rows.append({"world": world, "reading": rest[0] if rest and rest[0] in "✓✗" else "—"})
    frame = pd.DataFrame(rows, columns=["world", "reading"])
    return frame.value_counts().unstack(fill_value=0) if len(frame) else frame


def _format(line) -> str:
    """``mean [low, high] unit`` (the number of worlds is the page's, stated once above the table)."""
    if line.n_worlds == 0:
        return "not measured"
    if line.n_worlds == 1 or np.isnan(line.low):
        return f"{line.mean:.3g} {line.unit} (one world)"
    return f"{line.mean:.3g} [{line.low:.3g}, {line.high:.3g}] {line.unit}"


def verdict_records(report: pd.DataFrame) -> pd.DataFrame:
    """The report as the machine-readable ``verdicts.csv`` (one line per claim and variant)."""
    columns = ["key", "statement", "artefact", "role", "prior_source", "calibration", "headline", "verdict", "firm",
               "mean", "low", "high", "n_worlds", "per_world", "unit", "note"]
    return report[columns]


def provenance_table(rows: pd.DataFrame, sha_digits: int = 12) -> pd.DataFrame:
    """Per notebook and git revision (shortened to ``sha_digits``; ``-dirty`` kept): how many result rows,
    distinct run ids, which worlds and which fine-tuning seeds stand behind the report."""
    short = rows["git_sha"].map(lambda sha: sha[:sha_digits] + ("-dirty" if sha.endswith("-dirty") else ""))
    table = rows.assign(git_sha=short).groupby(["notebook", "git_sha"]).agg(
        rows=("value", "size"), run_ids=("run_id", "nunique"),
        worlds=("world_seed", lambda s: sorted(set(s) - {-1})), seeds=("seed", lambda s: sorted(set(s) - {-1})))
    return table.reset_index()
