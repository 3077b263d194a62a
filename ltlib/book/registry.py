"""The pre-registered claims registry and regime card, and the verdict rule over independent worlds.

The registry (``configs/claims/registry.yaml``) states, for every claim the book checks, its direction,
unit and, for a claim of no effect, an equivalence margin, before the numbers that judge it exist. The
regime card (``configs/regimes/<key>.yaml``) states the bands a mini world must meet to sit near the
paper's regime. :func:`decide` turns one value per independent world into a verdict:

- ``positive`` / ``negative``: reproduced when the 95 % t-interval over worlds lies on the claimed side
  of zero, not reproduced when it lies on the other side, otherwise inconclusive;
- ``equivalent`` (a claim of no effect): reproduced when the 90 % interval lies inside
  (−margin, margin), i.e. both one-sided tests reject at 5 % (TOST); not reproduced when the 95 %
  interval lies entirely beyond +margin or −margin; otherwise inconclusive;
- one world: no interval and no verdict ("single run");
- firm: decisive, and every world's own value lies on the verdict's side (inside the margin for an
  equivalence claim that is reproduced, outside it for one that is not).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import CONFIG_ROOT, from_dict, load_yaml
from ..errors import ConfigError
from ..results import mean_ci

REGISTRY_PATH = CONFIG_ROOT / "claims" / "registry.yaml"
ROLES = ("claim", "control", "sanity", "descriptive")
DIRECTIONS = ("positive", "negative", "equivalent", "none")
PRIOR_SOURCES = ("estimate", "truth", "reference")
SCALES = ("mini", "full", "both")
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, SINGLE_RUN, NOT_MEASURED, NO_VERDICT = (
    "reproduced", "not reproduced", "inconclusive", "single run", "not measured", "no verdict")


@dataclass(frozen=True)
class ClaimSpec:
    """One pre-registered claim (the fields are described at the top of ``registry.yaml``)."""

    key: str
    artefact: str
    statement: str
    paper: str
    role: str
    direction: str
    unit: str
    measure: str
    scale: str = "both"
    margin: float | None = None
    margin_why: str | None = None
    prior: tuple[str, ...] = ()
    calibration: str | None = None
    requires: str | None = None

    def __post_init__(self) -> None:
        where = f"claim {self.key!r}"
        _check_choice(self.role, ROLES, f"{where}: role")
        _check_choice(self.direction, DIRECTIONS, f"{where}: direction")
        _check_choice(self.scale, SCALES, f"{where}: scale")
        for source in self.prior:
            _check_choice(source, PRIOR_SOURCES, f"{where}: prior")
        if self.direction == "equivalent" and not (self.margin and self.margin > 0 and self.margin_why):
            raise ConfigError(f"{where}: an equivalence claim needs margin > 0 and margin_why")
        if self.direction != "equivalent" and self.margin is not None:
            raise ConfigError(f"{where}: margin is only meaningful for direction 'equivalent'")
        if (self.role == "descriptive") != (self.direction == "none"):
            raise ConfigError(f"{where}: role 'descriptive' goes with direction 'none', and only with it")
        if self.calibration not in (None, "both"):
            raise ConfigError(f"{where}: calibration must be 'both' or absent, got {self.calibration!r}")


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`decide` for one claim: verdict, interval over worlds and per-world values."""

    verdict: str
    firm: bool
    mean: float
    low: float
    high: float
    worlds: int
    per_world: tuple[float, ...]


def load_registry(path: str | Path = REGISTRY_PATH) -> list[ClaimSpec]:
    """Every claim of the registry, in file order.

    Raises:
        ConfigError: an invalid entry (named by key), a duplicate key, or an unknown field.
    """
    data = load_yaml(path)
    claims = [from_dict(ClaimSpec, entry, source=f"{path}: claim {i + 1}")
              for i, entry in enumerate(data.get("claims") or [])]
    keys = [c.key for c in claims]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ConfigError(f"{path}: duplicate claim key(s) {duplicates}")
    return claims


def decide(values: Sequence[float], spec: ClaimSpec) -> Verdict:
    """Judge one value per independent world against ``spec`` (rules in the module docstring).

    Args:
        values: one number per world (already averaged over fine-tuning seeds inside the world); NaN
            entries are dropped.
        spec: the claim's registry entry.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    mean, _, low, high, n = mean_ci(x, 0.95)
    if n == 0 or spec.direction == "none":
        return Verdict(NOT_MEASURED if n == 0 else NO_VERDICT, False, mean, low, high, n, tuple(x))
    if n == 1:
        return Verdict(SINGLE_RUN, False, mean, low, high, n, tuple(x))
    if spec.direction == "equivalent":
        verdict = _equivalence_verdict(x, low, high, float(spec.margin))
    else:
        # "< 0" is "−x > 0": flipping the sign also swaps the interval's ends
        verdict = _directional_verdict(low, high) if spec.direction == "positive" else _directional_verdict(-high, -low)
    return Verdict(verdict, _is_firm(x, verdict, spec), mean, low, high, n, tuple(x))


def _directional_verdict(low: float, high: float) -> str:
    """Verdict for the claim "value > 0" given the interval [low, high] (already sign-flipped)."""
    if low > 0:
        return REPRODUCED
    return NOT_REPRODUCED if high < 0 else INCONCLUSIVE


def _equivalence_verdict(x: np.ndarray, low95: float, high95: float, margin: float) -> str:
    _, _, low90, high90, _ = mean_ci(x, 0.90)
    if -margin < low90 and high90 < margin:
        return REPRODUCED
    return NOT_REPRODUCED if (low95 > margin or high95 < -margin) else INCONCLUSIVE


def as_claimed(values: np.ndarray, spec: ClaimSpec) -> np.ndarray:
    """Each world's own reading of a directional or equivalence claim: True where its value lies on the claimed
    side of zero (inside ±margin for a claim of no effect)."""
    values = np.asarray(values, dtype=float)
    if spec.direction == "equivalent":
        return np.abs(values) < float(spec.margin)
    return values > 0 if spec.direction == "positive" else values < 0


def _is_firm(x: np.ndarray, verdict: str, spec: ClaimSpec) -> bool:
    if verdict not in (REPRODUCED, NOT_REPRODUCED):
        return False
    claimed = as_claimed(x, spec)
    return bool(claimed.all()) if verdict == REPRODUCED else bool((~claimed).all())


_RULE_TEXT = {"positive": "> 0", "negative": "< 0", "none": "no verdict"}


def registry_table(claims: Sequence[ClaimSpec]) -> pd.DataFrame:
    """The registry as the book shows it: one row per claim, its rule in one short cell (``> 0``, ``< 0``,
    ``|x| < margin``), the prior sources and the scale; :func:`margin_reasons` gives each margin's reason."""
    rows = [{"claim": c.statement, "artefact": c.artefact, "role": c.role, "unit": c.unit,
             "rule": f"|x| < {c.margin:g}" if c.direction == "equivalent" else _RULE_TEXT[c.direction],
             "priors": ", ".join(c.prior), "scale": c.scale} for c in claims]
    return pd.DataFrame(rows)


def margin_reasons(claims: Sequence[ClaimSpec]) -> pd.DataFrame:
    """Each claim of no effect with its equivalence margin and why that size is negligible."""
    return pd.DataFrame([{"claim": c.statement, "margin": f"±{c.margin:g} {c.unit}", "why this size": c.margin_why}
                         for c in claims if c.direction == "equivalent"])


# --------------------------------------------------------------------------- the regime card
@dataclass(frozen=True)
class RegimeProperty:
    """One property of the regime card: what it is, its band [low, high] (None = open), the paper's value."""

    key: str
    what: str
    band: tuple[float | None, float | None]
    paper: str

    def __post_init__(self) -> None:
        if len(self.band) != 2:
            raise ConfigError(f"regime property {self.key!r}: band must be [low, high], got {list(self.band)}")
        low, high = self.band
        if low is not None and high is not None and low > high:
            raise ConfigError(f"regime property {self.key!r}: band low {low} > high {high}")

    def holds(self, value: float) -> bool:
        """True when ``value`` is finite and inside the band (ends included)."""
        low, high = self.band
        return bool(np.isfinite(value)) and (low is None or value >= low) and (high is None or value <= high)


def load_regime(key: str = "paper") -> list[RegimeProperty]:
    """The regime card ``configs/regimes/<key>.yaml``."""
    path = CONFIG_ROOT / "regimes" / f"{key}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown regime card {key!r} ({path} not found)")
    entries = load_yaml(path).get("properties") or []
    return [from_dict(RegimeProperty, entry, source=f"{path}: property {i + 1}") for i, entry in enumerate(entries)]


def check_regime(measured: dict[str, float], card: Sequence[RegimeProperty]) -> pd.DataFrame:
    """Target against measured, one row per property of ``card`` (``met`` is False for a missing value).

    Raises:
        ConfigError: ``measured`` names a property that the card does not have.
    """
    unknown = sorted(set(measured) - {p.key for p in card})
    if unknown:
        raise ConfigError(f"measured value(s) for unknown regime propert(y/ies) {unknown}")
    rows = []
    for prop in card:
        value = float(measured.get(prop.key, float("nan")))
        rows.append({"property": prop.key, "what": prop.what, "target": _band_text(prop.band),
                     "measured": value, "met": prop.holds(value), "paper": prop.paper})
    return pd.DataFrame(rows)


def _band_text(band: tuple[float | None, float | None]) -> str:
    low, high = band
    if low is None:
        return f"≤ {high:g}"
    return f"≥ {low:g}" if high is None else f"{low:g} – {high:g}"


def _check_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")
