"""The package as users install it: a wheel built from the sources, installed into a fresh environment,
runs `iaa --help` and scores a photo with a trained run (package discovery and package data follow the
layout)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "features", "heads", "evaluation")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding only the built wheel; the dependencies come from this environment's
    site-packages through a path file (they are not what is under test)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for name in PACKAGES:
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return {"wheel": wheel, "venv": venv, "site": Path(site), "cwd": tmp}


def test_the_wheel_holds_every_subpackage_and_the_page(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    for module in ("pipeline/cli.py", "pipeline/extraction/commands.py", "pipeline/training/commands.py",
                   "pipeline/scoring/commands.py", "pipeline/scoring/serve/static/index.html",
                   "pipeline/datasets/folder.py", "features/core/errors.py", "heads/options.py",
                   "evaluation/rundir.py"):
        assert module in names
    assert not [n for n in names if n.startswith("tests/")]


def test_the_installed_console_script_runs_and_scores(installed, scored):
    iaa = installed["venv"] / "bin" / "iaa"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(installed["cwd"])}
    where = subprocess.run([str(installed["venv"] / "bin" / "python"), "-c", "import pipeline; print(pipeline.__file__)"],
                           cwd=installed["cwd"], env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(installed["site"]))  # the installed copy, not the checkout
    helped = subprocess.run([str(iaa), "--help"], cwd=installed["cwd"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and "extract" in helped.stdout and "serve" in helped.stdout
    out = installed["cwd"] / "scores"
    scored_run = subprocess.run([str(iaa), "score", str(scored["runs"]["ridge"]), str(scored["folder"] / "images"),
                                 "--out", str(out)], cwd=installed["cwd"], env=env, capture_output=True, text=True)
    assert scored_run.returncode == 0, scored_run.stderr[-2000:]
    assert len((out / "scores.csv").read_text().splitlines()) == 1 + 24
