"""A non-editable install runs the demo from an unrelated directory: the configs and profiles travel
inside the distribution (package data), nothing is looked up in the source tree.

The project is built and installed into a temporary directory (``pip install --no-deps
--no-build-isolation --target``, from a copy of the sources, so the tree gets no build/), then run with
only that directory on PYTHONPATH from a directory that holds nothing of the project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("framework", "link", "fsw", "drivers", "ground", "hil", "pdh", "configs")
SOURCES = (*PACKAGES, "setup.cfg", "pyproject.toml", "README.md")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the project was installed into (not editable)."""
    pytest.importorskip("wheel", reason="building the wheel without isolation needs wheel (the test extra has it)")
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    site = root / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check", "--target", str(site), str(src)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return site


def _run(site: Path, cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_installed_modules_configs_and_profiles_come_from_the_install(installed: Path, tmp_path: Path) -> None:
    probe = ("import json, importlib; from framework.config import config_dir; "
             "from drivers.camera.profile import PROFILE_DIR as C; from drivers.deploy.profile import PROFILE_DIR as M; "
             f"print(json.dumps({{**{{p: importlib.import_module(p).__file__ for p in {PACKAGES!r}}}, "
             "'config_dir': str(config_dir()), 'cameras': str(C), 'mechanisms': str(M)}))")
    r = _run(installed, tmp_path, sys.executable, "-c", probe)
    assert r.returncode == 0, r.stderr[-3000:]
    where = json.loads(r.stdout)
    outside = {k: v for k, v in where.items() if not Path(v).resolve().is_relative_to(installed.resolve())}
    assert outside == {}, f"not from the install: {outside}"
    assert (Path(where["cameras"]) / "navcam.yaml").is_file()
    r = _run(installed, tmp_path, str(installed / "bin" / "pdh"), "check-config", "demo")  # a shipped config, by name
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith(str(installed / "configs" / "demo.yaml"))


def test_installed_pdh_demo_runs_bit_exact_from_an_unrelated_directory(installed: Path, tmp_path: Path) -> None:
    raw = yaml.safe_load((installed / "configs" / "demo.yaml").read_text())  # the shipped config, free ports
    for name, addr in raw["endpoints"].items():
        scheme = addr.split("://")[0]
        if scheme == "ipc":
            continue  # a socket in the run's private directory (OUT/ipc): no port to choose
        port = free_port() if scheme == "tcp" else free_port(__import__("socket").SOCK_DGRAM)
        raw["endpoints"][name] = f"{scheme}://127.0.0.1:{port}"
    raw["processes"]["navcam_emulator"]["profile"] = {"width": 320, "height": 256, "bit_depth": 12, "pattern": "mono"}
    raw["processes"]["navcam_driver"]["frame_rate_hz"] = 2.0  # profile_file: navcam stays a shipped profile's name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "run.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    r = _run(installed, elsewhere, str(installed / "bin" / "pdh"), "demo", "--config", "run.yaml", "--out", "out",
             "--duration", "2", "--drain", "120", timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = json.loads((elsewhere / "out" / "summary.json").read_text())
    assert summary["ok"] and summary["full_frames_made"] >= 1
    assert summary["full_frames_bit_exact"] == summary["full_frames_made"]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["out", "run.yaml"]
