"""The README's own-data block runs as written (issue 13), with the tiny random ViT standing in for the three
pre-trained backbones through the two variables the block reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ltlib.data import make_image_folder

pytestmark = pytest.mark.slow
REPO_ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- readme-own-data:start[^>]*-->\s*```bash\n(.*?)```\s*<!-- readme-own-data:end -->", re.S)


def test_the_own_data_block_of_the_readme_runs(tmp_path):
    script = BLOCK.search((REPO_ROOT / "README.md").read_text()).group(1)
    make_image_folder(tmp_path / "my_images", class_counts=(6, 3, 2))
    new = make_image_folder(tmp_path / "unlabelled", class_counts=(1, 1, 1), seed=5)
    (tmp_path / "new_images").mkdir()
    for k, image in enumerate(sorted(new.rglob("*.jpg"))):
        shutil.copy(image, tmp_path / "new_images" / f"photo {k}.jpg")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # this venv's interpreter
    (bin_dir / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO_ROOT),
           "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "BACKBONES": "tiny",
           "OPTIONS": "--random-init --device cpu --no-progress --set epochs=1 batch_size=2 max_steps=1 "
                      "num_workers=0 checkpoint_every=0"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert predictions["path"].tolist() == ["photo 0.jpg", "photo 1.jpg", "photo 2.jpg"]
    assert set(predictions["prediction"]) <= {"class 0", "class 1", "class 2"}
    assert (tmp_path / "exports" / "tiny" / "card.json").is_file()
    assert (tmp_path / "results" / "mine" / "stage2.csv").is_file()
