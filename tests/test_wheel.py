"""The wheel carries migrations/ and templates/: installed into a fresh venv outside the checkout,
`slamon db upgrade` and `slamon demo` work there."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_installs_and_migrates_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(dist), str(ROOT)],
        check=True,
        timeout=300,
    )
    wheels = list(dist.glob("slamon-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "--quiet", str(wheels[0])], check=True, timeout=600
    )
    site = subprocess.run(
        [str(py), "-c", "import slamon, pathlib; print(pathlib.Path(slamon.__file__).parent)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert "site-packages" in site
    assert (Path(site) / "_migrations" / "env.py").is_file()
    assert (Path(site) / "_templates").is_dir()

    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "c.toml").write_text('[database]\nurl = "sqlite:///fresh.db"\n', encoding="utf-8")
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    slamon = str(env_dir / "bin" / "slamon")
    up = subprocess.run(
        [slamon, "--config", "c.toml", "db", "upgrade"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    assert (work / "fresh.db").is_file()
    current = subprocess.run(
        [slamon, "--config", "c.toml", "db", "current"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert current.returncode == 0 and "(current)" in current.stdout
    demo = subprocess.run(
        [slamon, "demo"], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert demo.returncode == 0, demo.stderr
    assert "Queue 'delivery' slipped" in demo.stdout
    assert not os.path.exists(ROOT / "fresh.db")
