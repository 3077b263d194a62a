"""Headless Chromium for the book tests. The tests never install it: `make browser` does (run by
`make test` before pytest; it installs Debian's ``chromium`` package only when no Chromium is on PATH)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=8000"]
NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str:
    """Path of a Chromium binary on PATH; a clear error naming the make target when there is none."""
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"no Chromium on PATH (looked for {', '.join(NAMES)}); `make browser` installs one")


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([find_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def screenshot(page: Path, out: Path, size: str = "1280,1600") -> Path:
    """Render ``page`` (an HTML file) to a PNG ``out`` after its scripts have run."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _run([f"--window-size={size}", f"--screenshot={out.resolve()}", page.resolve().as_uri()])
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot of {page} (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return out


def rendered_dom(page: Path) -> str:
    """The DOM of ``page`` after its scripts (MathJax) have run."""
    return _run(["--dump-dom", page.resolve().as_uri()]).stdout
