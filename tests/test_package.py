"""The installable package: a wheel and an sdist that `twine check` passes, and the wheel installed in a
fresh virtual environment (not editable, outside the checkout) running the quickstart by name.

The fresh environment reuses this one's dependencies (torch is several GB) through a ``.pth`` file
listing this interpreter's site folders: packages installed there are found, but not this checkout,
and ``nas`` itself can come only from the wheel. This is the suite's one packaging test (it starts a
Ray of its own); ``-m "not package"`` leaves it out.
"""
from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("build")
pytest.importorskip("twine")

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.package


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_the_wheel_installs_and_runs_the_quickstart_by_name(tmp_path: Path) -> None:
    # a clean copy of the sources: building writes build/ and *.egg-info beside them
    src = tmp_path / "src"
    shutil.copytree(ROOT / "nas", src / "nas", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), "."], cwd=src)
    wheel = next(dist.glob("vitnas-*.whl"))
    sdist = next(dist.glob("vitnas-*.tar.gz"))
    checked = _run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)], cwd=tmp_path)
    assert checked.stdout.count("PASSED") == 2

    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert {"nas/configs/studies/quickstart.yaml", "nas/configs/search_spaces/vit_family.yaml",
            "nas/configs/ablations/coatnet_layouts.yaml"} <= set(names)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=tmp_path).stdout.strip())
    outer = [p for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    (purelib / "_outer_environment.pth").write_text("\n".join(outer) + "\n")
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], cwd=tmp_path)

    work = tmp_path / "work"  # not the checkout: `nas` can come only from the wheel
    work.mkdir()
    where = _run([str(python), "-c", "import nas; print(nas.__file__)"], cwd=work).stdout.strip()
    assert Path(where).is_relative_to(purelib), where
    run = _run([str(venv / "bin" / "nas"), "study", "run", "quickstart", "--set", "n_trials=2", "--set",
                "budget.epochs=1", "--set", "budget.subset=512", "--json"], cwd=work, timeout=400)
    import json

    status = json.loads(run.stdout)
    assert status["name"] == "quickstart" and status["states"] == {"COMPLETE": 2}
    assert all(0.0 <= t["val_acc"] <= 1.0 for t in status["trials"])
    assert (work / "runs" / "quickstart" / "study.db").is_file()
