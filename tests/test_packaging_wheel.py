"""Install anywhere (issue 13): the wheel built from this checkout, installed into a fresh virtual environment
outside the repository, finds its split lists, notebooks and configs as package data and runs the commands.

The fresh environment reuses this interpreter's installed dependencies (a ``.pth`` line naming their
site-packages, which does not execute the editable install's hooks there), so nothing is downloaded;
``ltlib`` itself comes only from the wheel, which the first test checks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
# Not copied into the build tree: environments, outputs and caches.
_IGNORED = shutil.ignore_patterns(".git", ".venv", "venv", "_build", "results", "runs", ".cache", "executed",
                                  "build", "*.egg-info", "__pycache__", ".pytest_cache", "*.ipynb")


def run(*args: str, cwd: Path, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """Build the wheel from a copy of the checkout and install it, without dependencies, into a fresh venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO_ROOT, source, symlinks=True, ignore=_IGNORED)
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp / "dist"),
        str(source), cwd=tmp, env=clean)
    wheel = next((tmp / "dist").glob("ltlib-*.whl"))
    venv = tmp / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=tmp, env=clean)
    python = venv / "bin" / "python"
    purelib = run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp,
                  env=clean).stdout.strip()
    Path(purelib, "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel),
        cwd=tmp, env=clean)
    work = tmp / "elsewhere with spaces"
    work.mkdir()
    env = {**clean, "HF_HUB_OFFLINE": "1", "LTLIB_CACHE": str(tmp / "cache"), "OMP_NUM_THREADS": "1"}
    return {"python": str(python), "work": work, "env": env, "purelib": Path(purelib), "wheel": wheel}


def ltlib(installed: dict, *args: str) -> subprocess.CompletedProcess:
    return run(installed["python"], "-m", "ltlib", *args, cwd=installed["work"], env=installed["env"])


def test_ltlib_comes_from_the_wheel_and_its_package_data_are_plain_files(installed):
    code = ("import ltlib, ltlib.paths as p; from ltlib.data import load_split; "
            "from ltlib.book.runner import load_plan;"
            "print(ltlib.__file__); print(p.manifests_dir()); print(p.in_checkout());"
            "print(len(load_split('places_lt', 'train'))); print(len(load_plan('smoke')))")
    lines = run(installed["python"], "-c", code, cwd=installed["work"], env=installed["env"]).stdout.splitlines()
    assert Path(lines[0]).is_relative_to(installed["purelib"])  # not the checkout, not the editable install
    assert Path(lines[1]) == installed["purelib"] / "ltlib" / "_data" / "manifests"
    assert lines[2] == "False"
    assert lines[3] == "62500"  # Places_LT_train.txt: every line read and checked from the wheel's copy
    assert int(lines[4]) == len(list((REPO_ROOT / "notebooks").glob("[0-9]*.py")))


def test_help_and_validate_manifest_on_a_bundled_list(installed):
    assert "validate-manifest" in ltlib(installed, "--help").stdout
    bundled = installed["purelib"] / "ltlib" / "_data" / "manifests" / "Places_LT" / "Places_LT_val.txt.gz"
    out = ltlib(installed, "validate-manifest", "--dataset", "places_lt", "--file", str(bundled),
                "--split", "val").stdout
    assert out.startswith(f"OK: {bundled} is a valid Places-LT val list: 7300 lines, 365 classes")
    assert Path(installed["env"]["LTLIB_CACHE"], "manifests", "places_lt-val.json").is_file()


def test_a_tiny_training_run_on_fixture_images(installed):
    make = ("from ltlib.data import make_fixture_dataset; make_fixture_dataset('my data', num_classes=2, "
            "train_counts=(2, 1), val_per_class=1, test_per_class=1, image_size=(40, 32))")
    run(installed["python"], "-c", make, cwd=installed["work"], env=installed["env"])
    out = ltlib(installed, "train", "--dataset", "my data/dataset.yaml", "--data-root", "my data", "--backbone", "tiny",
                "--random-init", "--device", "cpu", "--no-progress", "--set", "epochs=1", "batch_size=2",
                "micro_batch_size=1", "max_steps=1", "num_workers=0", "checkpoint_every=0").stdout
    assert "[train] LA tiny-random seed 0: accuracy" in out
    assert any((installed["work"] / "runs" / "fixture" / "tiny-random" / "LA").glob("seed0-*/run.json"))


def python_312() -> str | None:
    """A working Python 3.12 (a pyenv shim that is not activated does not count)."""
    candidates = [*sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12")), shutil.which("python3.12")]
    for candidate in filter(None, candidates):
        done = subprocess.run([str(candidate), "-c", "import sys; print(sys.version_info[:2])"],
                              capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == "(3, 12)":
            return str(candidate)
    return None


@pytest.mark.skipif(python_312() is None, reason="no Python 3.12 interpreter on this machine")
def test_every_module_compiles_under_python_312(installed, tmp_path):
    """Python 3.12 is allowed by requires-python; without its dependencies here, at least the sources must
    compile under it (the full runs above use this interpreter)."""
    package = installed["purelib"] / "ltlib"
    done = subprocess.run([python_312(), "-m", "compileall", "-q", "-d", "ltlib", "-x", "_data", str(package)],
                          capture_output=True, text=True, timeout=120,
                          env={**installed["env"], "PYTHONPYCACHEPREFIX": str(tmp_path)})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


@pytest.mark.skipif(not (REPO_ROOT / ".git").exists() or shutil.which("git") is None, reason="not a git checkout")
def test_pip_builds_the_same_package_data_from_a_git_url(tmp_path):
    """``pip install git+<repository>`` clones the committed tree: the links to the package data survive."""
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
        f"git+file://{REPO_ROOT}", cwd=tmp_path, env=clean)
    import zipfile

    names = zipfile.ZipFile(next(tmp_path.glob("ltlib-*.whl"))).namelist()
    assert "ltlib/_data/manifests/Places_LT/Places_LT_train.txt.gz" in names
    assert "ltlib/_data/notebooks/plan.yaml" in names and "ltlib/configs/backbones/tiny.yaml" in names
