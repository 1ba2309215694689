"""Execute one jupytext notebook of the book with a parameter profile.

    python tools/run_notebook.py book/01-data-and-priors.md --profile ci \
        --output _build/executed/ci/01-data-and-priors.ipynb

The MyST twin is converted with jupytext; papermill injects the profile's name
and its overrides into the notebook's ``parameters`` cell (the notebook loads
the profile itself, ``kernels.config.load_profile``), and the
executed notebook is written to a temporary name and renamed on success, so a
failed run leaves no output that a later ``make`` would trust. A failing cell
makes the command exit non-zero, naming the notebook and the cell.
Extra ``-p NAME VALUE`` pairs (values parsed as YAML) set either a profile
setting by its dotted name (``-p training.epochs 5``) or a parameter that the
notebook itself declares (a sweep point's ``n_train``); any other name stops the
run with the valid ones.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import jupytext
import nbformat
import papermill
import yaml

from kernels.config import available_profiles, load_profile
from kernels.io import STAGE_LOG_ENV, read_stage_log, stage_minutes, write_json

ROOT = Path(__file__).resolve().parents[1]
PARAMS = ROOT / "book" / "params"
# myst-nb's glue roles ({glue}`key`, {glue:text}`key:format`, ...) and directives.
GLUE_ROLE = re.compile(r"\{glue(?::\w*)?\}`([^`]+)`")
GLUE_DIRECTIVE = re.compile(r"^\s*(?:```|:::)\{glue(?::\w*)?\}\s+(\S+)", re.MULTILINE)


def artifacts_dir(profile):
    """Where a profile's figures, results and timings go."""
    return ROOT / "_build" / "artifacts" / profile


def notebook_parameters(profile, pairs, declared):
    """What papermill injects: the profile's name, its overrides, the output folders
    and the notebook's own parameters among ``pairs`` (``-p NAME VALUE``).

    A dotted name is a profile setting (validated by loading the profile with it);
    another name must be a parameter the notebook declares.
    """
    if profile not in available_profiles(PARAMS):
        raise SystemExit(f"Unknown profile {profile!r}; valid choices are "
                         f"{available_profiles(PARAMS)}.")
    params = {"profile": profile, "output_dir": str(artifacts_dir(profile)),
              "cache_dir": str(ROOT / "_build" / "cache")}
    overrides = {}
    for name, text in pairs:
        value = yaml.safe_load(text)
        if name in (*params, "overrides"):
            raise SystemExit(f"-p {name}: set by the runner (--profile and the build's "
                             f"folders) or from the dotted settings; not a -p parameter.")
        if "." in name:
            overrides[name] = value
        elif name in declared:
            params[name] = value
        else:
            own = sorted(set(declared) - {"profile", "overrides", "output_dir", "cache_dir"})
            raise SystemExit(f"-p {name}: the notebook has no parameter {name!r}; its own "
                             f"parameters are {own}, and profile settings are set by their "
                             f"dotted names (for example training.epochs).")
    try:
        load_profile(profile, overrides, PARAMS)
    except ValueError as error:
        raise SystemExit(f"-p: {error}") from None
    if overrides:
        if "overrides" not in declared:
            raise SystemExit(f"-p {sorted(overrides)}: this notebook loads no profile (it reads "
                             "what other notebooks wrote), so profile settings do not apply.")
        params["overrides"] = overrides
    return params


def traceback_tail(lines, n=12):
    """The last ``n`` lines of a kernel traceback, without its terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(lines or []))
    return "\n".join(text.splitlines()[-n:])


def missing_glue(notebook):
    """Keys the notebook's markdown reads with glue but none of its cells glued.

    The HTML build would fail on them, at the very end of a long build; checking each
    notebook as it is executed names the chapter and the keys at once. Keys read from
    another document (``path::key``) are not checked.
    """
    wanted = set()
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            wanted.update(match.split(":")[0] for match in GLUE_ROLE.findall(cell.source)
                          if "::" not in match)
            wanted.update(key for key in GLUE_DIRECTIVE.findall(cell.source)
                          if "::" not in key)
    glued = {output.get("metadata", {}).get("scrapbook", {}).get("name")
             for cell in notebook.cells if cell.cell_type == "code"
             for output in cell.get("outputs", [])}
    return sorted(wanted - glued)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path, help="MyST (.md) notebook twin")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--output", type=Path, required=True)
    # A cell may generate a whole data store: the default profile's 70,000 strong-prior
    # models took over an hour on two cores shared with other work.
    parser.add_argument("--timeout", type=int, default=4 * 3600, help="per-cell timeout (s)")
    parser.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = parser.parse_args(argv)

    stem = args.notebook.stem
    notebook = jupytext.read(args.notebook)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # A notebook run on its own, before any other of its profile, writes into this folder.
    artifacts_dir(args.profile).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output.parent) as tmp:
        source = Path(tmp) / f"{stem}.ipynb"
        jupytext.write(notebook, source)
        declared = papermill.inspect_notebook(str(source))
        missing = sorted({"profile", "output_dir", "cache_dir"} - set(declared))
        if missing:
            raise SystemExit(f"{args.notebook}'s parameters cell must declare {missing}.")
        injected = notebook_parameters(args.profile, args.p, declared)
        # The notebook runs in its own folder; relative paths keep the build machine's
        # folders out of the injected parameters cell that the site shows.
        here = args.notebook.resolve().parent
        for name in ("output_dir", "cache_dir"):
            injected[name] = os.path.relpath(injected[name], here)
        print(f"[{stem}] profile {args.profile}: {injected}", flush=True)
        if injected.get("overrides") and "result" not in declared:
            print(f"[{stem}] note: with these overrides its figures and results in "
                  f"{os.path.relpath(artifacts_dir(args.profile), ROOT)} are no longer the "
                  f"profile's; the page 'Reproducing this book' marks the run.", flush=True)
        executed = Path(tmp) / "executed.ipynb"
        # The kernel must run this interpreter (the project's venv).
        os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        # The kernel inherits this: kernels.io.stage_timer logs each timed stage there.
        stage_log = (Path(tmp) / "stages.jsonl").resolve()  # the kernel runs in book/
        previous = os.environ.get(STAGE_LOG_ENV)
        os.environ[STAGE_LOG_ENV] = str(stage_log)
        started = time.perf_counter()
        kept = args.output.with_name(f"{args.output.stem}.failed.ipynb")
        try:
            papermill.execute_notebook(
                str(source), str(executed), parameters=injected, kernel_name="python3",
                cwd=str(args.notebook.resolve().parent), execution_timeout=args.timeout,
                progress_bar=False, log_output=False,
            )
        except papermill.PapermillExecutionError as error:
            # Keep what ran, with its traceback, beside the output: a long chapter that
            # fails late must not have to run again just to be diagnosed.
            if executed.exists():
                os.replace(executed, kept)
            raise SystemExit(
                f"Notebook {args.notebook} failed in cell {error.exec_count} "
                f"(profile {args.profile}): {error.ename}: {error.evalue}\n"
                f"{traceback_tail(error.traceback)}\n"
                f"The executed notebook up to the failure: {kept}"
            ) from None
        finally:  # a caller in the same process (a test) must not inherit the log
            if previous is None:
                os.environ.pop(STAGE_LOG_ENV, None)
            else:
                os.environ[STAGE_LOG_ENV] = previous
        # Readers see the values actually used (papermill's injected cell); the
        # notebook's own defaults cell would only repeat or contradict them.
        result = nbformat.read(executed, as_version=4)
        missing = missing_glue(result)
        if missing:
            raise SystemExit(f"Notebook {args.notebook} (profile {args.profile}) reads glue "
                             f"keys that no cell glued: {missing}")
        for cell in result.cells:
            tags = cell.metadata.get("tags", [])
            if "parameters" in tags and "remove-cell" not in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]
        nbformat.write(result, executed)
        wall = time.perf_counter() - started
        stages = read_stage_log(stage_log)
        write_timing(stem, args.profile, wall, run=args.output.stem, stages=stages,
                     overrides=injected.get("overrides"))
        os.replace(executed, args.output)
        kept.unlink(missing_ok=True)  # a success replaces an earlier failure
    shares = ", ".join(f"{name} {minutes:.1f}" for name, minutes
                       in stage_minutes(stages, wall).items() if minutes >= 0.05)
    print(f"[{stem}] wrote {args.output} in {wall / 60:.1f} min"
          + (f" ({shares} min)" if shares else ""), flush=True)


def write_timing(stem, profile, wall_s, run=None, stages=(), overrides=None):
    """Record one notebook's execution wall time for the page "Reproducing this book".

    ``run`` names one of several executions of the same notebook (a sweep point);
    ``stages`` are the :func:`kernels.io.stage_timer` records of the execution, kept
    with their minutes per stage (:func:`kernels.io.stage_minutes`). ``overrides``
    are the profile settings the run changed (``-p section.name VALUE``): the
    figures and results it wrote then differ from the profile's, and the record
    says so.
    """
    run = stem if run in (None, stem) else run
    name = stem if run == stem else f"{stem}[{run}]"
    record = {"notebook": stem, "run": run, "profile": profile, "wall_s": round(wall_s, 1),
              "finished": datetime.now(UTC).isoformat(timespec="seconds"),
              "cpu_count": os.cpu_count(), "machine": platform.machine(),
              "python": platform.python_version(), "stages": list(stages),
              "stage_minutes": stage_minutes(stages, wall_s),
              "overrides": dict(overrides or {})}
    return write_json(record, artifacts_dir(profile) / "timings" / f"{name}.json")


if __name__ == "__main__":
    main()
