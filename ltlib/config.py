"""Small config files (YAML) loaded into frozen dataclasses, looked up by registry key.

Layout: ``ltlib/configs/<kind>/<key>.yaml`` for kind in ``backbones``, ``datasets``, ``methods``,
``worlds``. A user file can be given by path instead of a key.
"""

from __future__ import annotations

import dataclasses
import numbers
import types
import typing
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from .errors import ConfigError

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
T = TypeVar("T")


def list_configs(kind: str) -> list[str]:
    """Registry keys available for ``kind`` (e.g. ``list_configs("datasets")``)."""
    return sorted(p.stem for p in (CONFIG_ROOT / kind).glob("*.yaml"))


def config_path(kind: str, key_or_path: str | Path) -> Path:
    """Resolve a registry key or an explicit ``.yaml`` path; unknown keys raise ``ConfigError``."""
    candidate = Path(key_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise ConfigError(f"{kind} config file not found: {candidate}")
        return candidate
    path = CONFIG_ROOT / kind / f"{key_or_path}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown {kind[:-1]} {key_or_path!r}; known: {', '.join(list_configs(kind))}")
    return path


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a syntax error or a non-mapping raises ``ConfigError`` naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def from_dict(cls: type[T], data: dict[str, Any], source: str = "<dict>") -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and missing required ones.

    Lists become tuples where the field is annotated as a tuple, so configs stay hashable.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; allowed: {sorted(fields)}")
    kwargs = _typed(cls, data, source)
    missing = [n for n, f in fields.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{source}: missing required key(s) {missing} for {cls.__name__}")
    return cls(**kwargs)


def _typed(cls: type, data: dict[str, Any], source: str) -> dict[str, Any]:
    """``data`` coerced to ``cls``'s field types (lists to tuples, ints to floats), each value checked to
    have its field's scalar type; a mismatch raises ConfigError naming ``source`` and the key."""
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v) for k, v in data.items() if k in hints}
    for key, value in kwargs.items():
        if not _matches(hints[key], value):
            raise ConfigError(f"{source}: {key} = {value!r} has the wrong type for {cls.__name__}: expected "
                              f"{_type_name(hints[key])}")
    return kwargs


def load_config(cls: type[T], kind: str, key_or_path: str | Path, **overrides: Any) -> T:
    """Load registry entry (or file) ``key_or_path`` of ``kind`` into ``cls``, then apply overrides."""
    path = config_path(kind, key_or_path)
    _typed(cls, overrides, "override")  # a bad override is named as such, not as the file's
    data = {**load_yaml(path), **overrides}
    return from_dict(cls, data, source=str(path))


def replace(config: T, **changes: Any) -> T:
    """``dataclasses.replace`` that names the dataclass when a field does not exist."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown} for {type(config).__name__}; allowed: {sorted(names)}")
    return dataclasses.replace(config, **changes)


_SCALARS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _matches(hint: Any, value: Any) -> bool:
    """Whether ``value`` fits a scalar annotation (int, float, str, bool, optional ones, tuples) or a config
    section's dataclass (an instance: nested mappings are built before, ``ltlib.miniworld.config``); other
    annotations are left to the dataclass's own checks."""
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return isinstance(value, hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(a, value) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple)
    if hint in (int, float):  # NumPy integers and floats count (notebooks pass them)
        return isinstance(value, numbers.Real if hint is float else numbers.Integral) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
    names = [_SCALARS.get(a, getattr(a, "__name__", str(a))) for a in args]
    return " or ".join(names) + (" or null" if type(None) in typing.get_args(hint) else "")


def _coerce(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return value if value is None or len(args) != 1 else _coerce(args[0], value)
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["epochs=2", "tte=false", "lr=1e-3"]`` → ``{"epochs": 2, "tte": False, "lr": 0.001}``.

    Values are read as numbers where Python reads them as numbers (``1e-3`` is a float, unlike YAML 1.1),
    else as YAML scalars (``true``, ``null``, lists); a value holding ``#`` stays the literal string.

    Raises:
        ConfigError: an item without ``=``, with an empty key or a value YAML cannot read, naming it.
    """
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE")
        out[key.strip()] = _scalar(value.strip(), pair)
    return out


def _scalar(text: str, pair: str) -> Any:
    """One ``--set`` value: None when empty, an int or float when it reads as one, else YAML (see above)."""
    if not text:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if "#" in text:
        return text  # YAML would drop everything after " #" as a comment
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {pair!r}: cannot read the value: {str(exc).splitlines()[0]}") from exc
