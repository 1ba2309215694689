"""Tests that the two install paths (pip and conda) describe one environment."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sync_env  # noqa: E402


def test_environment_yml_matches_pyproject():
    """environment.yml pins exactly the versions that pyproject.toml pins."""
    expected, _ = sync_env.pinned_requirements()
    assert sync_env.environment_pins() == expected


def test_environment_yml_is_the_generated_text():
    """environment.yml is byte-identical to what tools/sync_env.py generates."""
    assert (ROOT / "environment.yml").read_text() == sync_env.render()


def test_check_detects_drift(tmp_path, monkeypatch):
    """The drift check fails when a version in environment.yml differs."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    env["dependencies"] = [d.replace("numpy=", "numpy=1.0.") if isinstance(d, str) else d
                           for d in env["dependencies"]]
    drifted = tmp_path / "environment.yml"
    drifted.write_text(yaml.safe_dump(env))
    monkeypatch.setattr(sync_env, "ENVIRONMENT", drifted)
    assert sync_env.main(["--check"]) == 1


def test_every_dependency_is_pinned_and_installed():
    """Every pinned requirement is installed at its pinned version."""
    from importlib.metadata import version

    expected, _ = sync_env.pinned_requirements()
    for name, pinned in expected.items():
        assert version(name).split("+")[0] == pinned, name


def test_check_command_passes():
    """`python tools/sync_env.py --check` exits 0 on the committed files."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "sync_env.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
