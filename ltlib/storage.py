"""Atomic file writes: a reader never sees a half-written file and a crash never loses the old one."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import LtlibError


class StorageError(LtlibError, OSError):
    """A file could not be written (full disk, read-only folder, a file where a folder should be); the
    message names it."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename.

    The temporary file lives in the same directory so that ``os.replace`` is atomic on POSIX.
    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StorageError(f"{path}: cannot create it in {path.parent} ({exc.strerror or exc}); is the folder "
                           "read-only, or a file?") from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp_path, path)
    except OSError as exc:  # a full disk, a file-size limit, a read-only folder: name the file, keep the old one
        raise StorageError(f"{path}: cannot write it ({exc.strerror or exc}); is the disk full or read-only? "
                           "Any previous version is intact") from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def json_text(obj: Any) -> str:
    """``obj`` as indented, key-sorted JSON (NumPy values and tensors become lists, paths strings)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON (NumPy scalars are converted)."""
    return write_text(path, json_text(obj))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# Columns that hold identifiers (hashes, revisions, version strings): read as text, never as numbers. A hex hash
# such as "908682e12832" is otherwise parsed as the float 9.1e12837 = inf, and one of all digits as an integer.
IDENTIFIER_COLUMNS = ("git_sha", "config_hash", "parameters", "versions", "run_id", "model_fingerprint")


def read_table(path: str | os.PathLike, text_columns: tuple[str, ...] = IDENTIFIER_COLUMNS) -> Any:
    """Read a CSV this library wrote as a pandas DataFrame, with ``text_columns`` (where present) as strings and
    their empty cells as ``""`` rather than NaN."""
    import pandas as pd

    frame = pd.read_csv(path, dtype={c: str for c in text_columns})
    present = [c for c in text_columns if c in frame.columns]
    return frame.fillna({c: "" for c in present}) if present else frame


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON record as a line (flushed and fsynced, so a crash loses at most this line)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True, default=_json_default) + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise StorageError(f"{path}: cannot append to it ({exc.strerror or exc}); is the disk full or "
                           "read-only?") from exc


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


@contextmanager
def exclusive_lock(folder: str | os.PathLike, name: str = ".lock", enabled: bool = True,
                   wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on ``folder/name`` (``flock``) for the block: two processes never write one
    run folder together. The kernel drops the lock when the process dies, so a killed run never leaves
    its folder locked.

    Args:
        folder: the folder to lock (created if absent).
        name: the lock file's name in it.
        enabled: False makes this a no-op (processes other than the main one).
        wait: wait for the holder (saying so on stderr) instead of failing at once.
    Raises:
        StorageError: another process holds the lock and ``wait`` is False (naming the folder and pid).
    """
    if not enabled:
        yield
        return
    import fcntl

    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            if not wait:
                raise StorageError(f"{folder}: in use by another process (pid {holder}); wait for it to finish, "
                                   "or use another folder") from None
            print(f"[ltlib] {folder}: in use by process {holder}; waiting for it", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
