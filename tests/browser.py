"""Headless Chromium for the book tests: installed by the test run itself when missing (apt-get)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=8000"]


def ensure_chromium() -> str:
    """Path of a Chromium binary, installing Debian's ``chromium`` package if none is present."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True)
    found = shutil.which("chromium")
    if not found:
        raise RuntimeError("apt-get install chromium finished but no chromium binary is on PATH")
    return found


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([ensure_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
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
