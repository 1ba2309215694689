"""Tests of the tools around the book: tools/sweep.py and the offline Sphinx extension."""

import json
import sys
from pathlib import Path

import nbformat
import pytest

from kernels.config import PAPER_PERIODS, Grid
from kernels.metrics import period_bin_labels

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import sweep  # noqa: E402


def test_definitions_cover_every_profile():
    """Each sweep names an existing notebook and values for every profile in book/params."""
    profiles = {path.stem for path in (ROOT / "book" / "params").glob("*.yml")}
    assert {"ci", "default", "paper", "paper-smoke"} <= profiles
    for name, spec in sweep.definitions().items():
        assert (ROOT / spec["notebook"]).exists(), name
        assert set(spec["values"]) == profiles, name
        assert set(spec["fixed"]) == profiles, name
        assert all(len(v) >= 3 for v in spec["values"].values()), name


def test_collect_makes_a_tidy_table(tmp_path, monkeypatch):
    """One row per value, wave and period bin, plus the summary figure."""
    monkeypatch.setattr(sweep, "sweep_dir", lambda name, profile: tmp_path)
    results = []
    for value in (100, 200):
        metrics = {"median_cosine": 0.9, "median_ci_low": 0.88, "median_ci_high": 0.92}
        for name, v in (("cosine_skill", 0.5), ("raw_skill", 0.3), ("directional_error", 0.1)):
            metrics.update({name: v, f"{name}_low": v - 0.05, f"{name}_high": v + 0.05})
        record = {"n_train": value, "hidden": 64, "layers": 2, "n_seeds": 3, "parameters": 1000,
                  "training_time_s": 1.0, "test_rmse_km_s": 0.1,
                  "bins": [{"wave": wave, "period_bin": b, **metrics}
                           for wave in ("rayleigh", "love") for b in period_bin_labels()]}
        path = tmp_path / f"n_train={value}.json"
        path.write_text(json.dumps(record))
        results.append(path)
    spec = {"parameter": "n_train", "title": "t", "xlabel": "Training models"}
    table = sweep.collect(spec, "training-size", "ci", results)
    assert len(table) == 2 * 2 * 6
    assert set(table["value"]) == {100, 200}
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "summary.png").exists()


def test_a_sweep_point_is_reused_until_its_inputs_change(tmp_path, monkeypatch):
    """A second run of the same point runs nothing; a changed override runs again."""
    monkeypatch.setattr(sweep, "sweep_dir", lambda name, profile: tmp_path)
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        output = Path(command[command.index("--output") + 1])
        output.write_text("{}")
        result = Path(json.loads(command[command.index("result") + 1]))
        result.write_text("{}")
        return type("Done", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    monkeypatch.setattr(sweep.subprocess, "run", fake_run)
    spec = sweep.definitions()["training-size"]
    sweep.run_point(spec, "training-size", "ci", 120)
    sweep.run_point(spec, "training-size", "ci", 120)
    assert len(calls) == 1
    spec = {**spec, "fixed": {"ci": {"n_seeds": 2}}}
    sweep.run_point(spec, "training-size", "ci", 120)
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["nope"], r"Unknown sweep 'nope'; valid choices are"),
        (["width", "--profile", "huge"], r"defines no values for profile 'huge'"),
        (["width", "--profile", "ci", "--jobs", "0"], r"--jobs must be at least 1, got 0"),
    ],
)
def test_bad_sweep_arguments(argv, match):
    with pytest.raises(SystemExit, match=match):
        sweep.main(argv)


def test_offline_extension_drops_only_the_thebe_scripts():
    """book/_ext/offline.py removes thebe's loader and configuration, nothing else."""
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    import offline

    class Script(str):
        def __new__(cls, filename, body=""):
            obj = super().__new__(cls, filename)
            obj.attributes = {"body": body} if body else {}
            return obj

    context = {"script_files": [Script("_static/doctools.js"),
                                Script("_static/sphinx-thebe.js"),
                                Script("", body='const THEBE_JS_URL = "https://unpkg.com"'),
                                Script("mathjax/tex-chtml.js")]}
    offline._drop_thebe(None, "index", "page.html", context, None)
    assert [str(s) for s in context["script_files"]] == ["_static/doctools.js",
                                                          "mathjax/tex-chtml.js"]


def test_gpu_transformer_steps_run_end_to_end_at_toy_size(tmp_path):
    """benchmarks/gpu_transformer.py: pack, train (--toy, on CPU) and report chain up.

    The packed splits equal the store's, every Jacobian asked for is written and
    compared with exact kernels, and the record names its settings and date.
    """
    import importlib.util

    import numpy as np

    from kernels.data import generate, load_split

    spec = importlib.util.spec_from_file_location("gpu_transformer",
                                                  ROOT / "benchmarks" / "gpu_transformer.py")
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    store = generate(tmp_path / "s.zarr", "weak", 40, 5, chunk_size=20, progress=False)
    gpu.pack(tmp_path / "s.zarr", tmp_path / "data.npz")
    splits, _ = gpu.unpack(tmp_path / "data.npz")
    test = load_split(store, "test")
    np.testing.assert_array_equal(splits["test"]["velocity_s"].values,
                                  test["velocity_s"].values.astype("float32"))
    gpu.train(tmp_path / "data.npz", tmp_path / "out", budget=1.0, n_jacobian=3,
              deadline=1e9, toy=True)
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["toy"] and result["jacobian"]["n_models"] == 3
    assert result["training"]["epochs"] == len(result["history"])
    assert result["argv"] and result["run_on"]
    assert {"basis_mlp_jacobian", "transformer_jacobian_math"} <= set(
        result["throughput_models_per_s"])
    with pytest.raises(SystemExit, match="is not empty"):  # no mixing of two runs' files
        gpu.train(tmp_path / "data.npz", tmp_path / "out", budget=1.0, n_jacobian=1,
                  deadline=1e9, toy=True)
    gpu.report(tmp_path / "out", tmp_path / "data.npz", tmp_path / "record.json")
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["kernel_agreement"]["n_models"] == 3
    assert -1.0 <= record["kernel_agreement"]["matched"]["median_cosine"] <= 1.0
    assert record["reported_on"]
    assert record["kernel_agreement"]["n_kernels"] == 3 * 2 * 59


def test_recorded_gpu_run_is_the_paper_network_on_the_default_weak_data():
    """The committed GPU record (shown in chapter 3) is what the book says it is.

    The published Transformer sizes of the paper profile, the default profile's
    weak-prior store on the paper's grid and periods (so the chapter may set it
    beside its own surrogate), 200 Jacobians compared with exact kernels, and
    per-bin errors that pool exactly to the per-wave RMSE (bins partition the
    periods; 1e-6 covers float rounding).
    """
    import numpy as np
    import pandas as pd

    from kernels.config import load_profile

    record = json.loads((ROOT / "benchmarks" / "results" / "transformer-gpu.json").read_text())
    params = {name: load_profile(name).flat() for name in ("paper", "default")}
    assert record["architecture_options"] == params["paper"]["architecture_options"]
    assert record["training"]["batch_size"] == params["paper"]["batch_size"]
    assert 40e6 < record["n_parameters"] < 46e6 and not record["toy"]
    data = json.loads(record["data"]["config"])
    assert (data["prior"], data["n"], data["seed"]) == (
        "weak", params["default"]["n_data"], params["default"]["seed"])
    grid = Grid()
    assert (data["n_nodes"], data["spacing"]) == (grid.n_nodes, grid.spacing)
    assert tuple(data["periods"]) == PAPER_PERIODS
    assert record["kernel_agreement"]["n_models"] == record["jacobian"]["n_models"] == 200
    bins = pd.DataFrame(record["test_by_period_bin"])
    for wave, rows in bins.groupby("wave"):
        pooled = np.sqrt((rows["rmse"] ** 2 * rows["count"]).sum() / rows["count"].sum())
        assert pooled == pytest.approx(record["test_rmse"][wave], rel=1e-6)


def test_missing_glue_names_keys_read_but_never_glued():
    """The runner's glue check finds keys the markdown reads that no cell glued."""
    import nbformat
    import run_notebook

    notebook = nbformat.v4.new_notebook()
    glued = nbformat.v4.new_code_cell("glue('a', 1)")
    glued.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "1"},
                                            metadata={"scrapbook": {"name": "a"}})]
    notebook.cells = [
        glued,
        nbformat.v4.new_markdown_cell(
            "{glue:text}`a:.2f` and {glue}`b` and {glue:text}`other.ipynb::c`\n"
            "```{glue:figure} d\n```"),
    ]
    assert run_notebook.missing_glue(notebook) == ["b", "d"]
    notebook.cells[1].source = "{glue:text}`a:.0f` only"
    assert run_notebook.missing_glue(notebook) == []


def test_write_timing_records_each_run_atomically(tmp_path, monkeypatch):
    """A chapter's timing is one file per notebook; sweep points get one file each."""
    import run_notebook

    monkeypatch.setattr(run_notebook, "ROOT", tmp_path)
    path = run_notebook.write_timing("03-surrogate-training", "ci", 61.25)
    record = json.loads(path.read_text())
    assert path.name == "03-surrogate-training.json"
    assert record["wall_s"] == 61.2 or record["wall_s"] == 61.3
    assert record["run"] == "03-surrogate-training" and record["profile"] == "ci"
    assert record["overrides"] == {}
    record = json.loads(run_notebook.write_timing(
        "03-surrogate-training", "ci", 1.0, overrides={"training.epochs": 5}).read_text())
    assert record["overrides"] == {"training.epochs": 5}
    point = run_notebook.write_timing("emergence-point", "ci", 5.0, run="n_train=120")
    assert point.name == "emergence-point[n_train=120].json"
    assert sorted(p.name for p in point.parent.iterdir()) == [
        "03-surrogate-training.json", "emergence-point[n_train=120].json"]  # no temp files


def _declared_parameters(path):
    """Names assigned in a MyST notebook's ``parameters`` cell."""
    import ast

    import jupytext

    notebook = jupytext.read(path)
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, path
    return {node.targets[0].id for node in ast.parse(cells[0].source).body
            if isinstance(node, ast.Assign)}


def test_every_notebook_takes_the_profile_and_sweeps_set_valid_names():
    """Every notebook's parameters cell takes a profile's name, and its overrides where
    it loads the profile (the pages that read other notebooks' results load none); no
    notebook declares a profile setting of its own; a sweep varies and fixes only the
    notebook's own parameters or dotted profile settings."""
    from kernels.config import load_profile

    notebooks = [*sorted((ROOT / "book").glob("[0-9][0-9]-*.md")),
                 ROOT / "book" / "sweeps" / "emergence-point.md"]
    settings = set(load_profile("ci").settings())
    loading = 0
    for path in notebooks:
        declared = _declared_parameters(path)
        assert {"profile", "output_dir", "cache_dir"} <= declared, path.name
        loads = "load_profile(profile, overrides)" in path.read_text()
        assert loads == ("overrides" in declared), path.name
        loading += loads
        assert not declared & {name.split(".")[1] for name in settings}, path.name
    assert loading == 9  # chapters 1-6, 8, 9 and the sweep point
    for name, spec in sweep.definitions().items():
        own = _declared_parameters(ROOT / spec["notebook"])
        for values in spec.get("fixed", {}).values():
            assert set(values) <= own | settings, name
        assert spec["parameter"] in own | settings, name


def test_a_name_that_is_neither_parameter_nor_setting_is_an_error(tmp_path):
    """`-p NAME VALUE` for a name the notebook lacks, or for an unknown or mistyped
    profile setting, stops before any execution with the valid names."""
    import run_notebook

    def run(*pair):
        run_notebook.main([str(ROOT / "book" / "sweeps" / "emergence-point.md"),
                           "--profile", "ci", "--output", str(tmp_path / "x.ipynb"),
                           "-p", *pair])

    with pytest.raises(SystemExit, match=r"no parameter 'n_dat'; its own parameters are "
                                         r"\[.*'n_train'.*dotted names"):
        run("n_dat", "100")
    with pytest.raises(SystemExit, match=r"unknown profile settings \['training.epoch'\]; "
                                         r"the settings are \[.*'training.epochs'"):
        run("training.epoch", "3")
    with pytest.raises(SystemExit, match=r"training.epochs must be of type int, got 'x'"):
        run("training.epochs", "x")
    with pytest.raises(SystemExit, match=r"-p cache_dir: set by the runner"):
        run("cache_dir", "elsewhere")
    with pytest.raises(SystemExit, match=r"this notebook loads no profile"):
        run_notebook.main([str(ROOT / "book" / "07-sweeps.md"), "--profile", "ci",
                           "--output", str(tmp_path / "x.ipynb"), "-p", "run.seed", "3"])
    with pytest.raises(SystemExit, match=r"Unknown profile 'nope'"):
        run_notebook.main([str(ROOT / "book" / "sweeps" / "emergence-point.md"),
                           "--profile", "nope", "--output", str(tmp_path / "x.ipynb")])
    assert not (tmp_path / "x.ipynb").exists()


def test_the_runner_records_the_stages_a_notebook_timed(tmp_path, monkeypatch):
    """The executed notebook's kernel logs its timed stages to the runner, which keeps
    them, with their minutes, in the notebook's timing record."""
    import run_notebook

    monkeypatch.setattr(run_notebook, "ROOT", tmp_path)
    # As make calls it: paths relative to the root, while the kernel runs in book/.
    monkeypatch.chdir(tmp_path)
    source = Path("book") / "toy.md"
    source.parent.mkdir()
    source.write_text(
        "---\njupytext:\n  text_representation:\n    extension: .md\n"
        "    format_name: myst\nkernelspec:\n  display_name: Python 3\n"
        "  language: python\n  name: python3\n---\n\n# Toy\n\n"
        "```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = 'ci'\n"
        "overrides = {}\noutput_dir = 'out'\ncache_dir = 'cache'\n```\n\n"
        "```{code-cell} ipython3\nimport time\n\nfrom kernels.io import stage_timer\n\n"
        "with stage_timer('data', 'toy'):\n    time.sleep(0.2)\n"
        "with stage_timer('training', 'toy'):\n    pass\n"
        "from pathlib import Path\n\n(Path(output_dir) / 'written.txt').write_text('ok')\n```\n")
    run_notebook.main([str(source), "--profile", "ci", "--output", "out/toy.ipynb"])
    # The first notebook of a profile run on its own can write into its output folder.
    assert (tmp_path / "_build" / "artifacts" / "ci" / "written.txt").read_text() == "ok"
    record = json.loads((tmp_path / "_build" / "artifacts" / "ci" / "timings"
                         / "toy.json").read_text())
    assert [(r["stage"], r["label"]) for r in record["stages"]] == [("data", "toy"),
                                                                     ("training", "toy")]
    assert record["stages"][0]["seconds"] >= 0.2
    minutes = record["stage_minutes"]
    assert set(minutes) == {"data", "kernels", "training", "inversion", "evaluation"}
    assert sum(minutes.values()) == pytest.approx(record["wall_s"] / 60, abs=0.01)
    import os

    from kernels.io import STAGE_LOG_ENV

    assert STAGE_LOG_ENV not in os.environ  # the log was the execution's only


def test_a_failed_run_keeps_its_notebook_and_shows_the_traceback(tmp_path, monkeypatch):
    """A notebook that raises stops the runner with the failing cell's traceback and keeps
    the executed notebook beside the output; a later successful run removes it."""
    import run_notebook

    monkeypatch.setattr(run_notebook, "ROOT", tmp_path)
    monkeypatch.chdir(tmp_path)
    source = Path("book") / "toy.md"
    source.parent.mkdir()
    header = ("---\njupytext:\n  text_representation:\n    extension: .md\n"
              "    format_name: myst\nkernelspec:\n  display_name: Python 3\n"
              "  language: python\n  name: python3\n---\n\n# Toy\n\n"
              "```{code-cell} ipython3\n:tags: [parameters]\n\nprofile = 'ci'\n"
              "overrides = {}\noutput_dir = 'out'\ncache_dir = 'cache'\n```\n\n")
    source.write_text(header + "```{code-cell} ipython3\ndef inner(x):\n"
                      "    raise ValueError(f'x = {x} is wrong')\n\n\ninner(7)\n```\n")
    kept = tmp_path / "out" / "toy.failed.ipynb"
    with pytest.raises(SystemExit) as stopped:
        run_notebook.main([str(source), "--profile", "ci", "--output", "out/toy.ipynb"])
    message = str(stopped.value)
    assert "ValueError: x = 7 is wrong" in message
    assert "inner" in message and "\x1b[" not in message  # the traceback, without colours
    assert str(kept) in message or "toy.failed.ipynb" in message
    cells = nbformat.read(kept, as_version=4).cells
    assert any(output.get("ename") == "ValueError" for cell in cells
               for output in cell.get("outputs", []))
    assert not (tmp_path / "out" / "toy.ipynb").exists()
    source.write_text(header + "```{code-cell} ipython3\nx = 1\n```\n")
    run_notebook.main([str(source), "--profile", "ci", "--output", "out/toy.ipynb"])
    assert (tmp_path / "out" / "toy.ipynb").exists() and not kept.exists()


def test_no_prose_line_of_a_page_starts_with_a_percent_sign():
    """In MyST a line that starts with ``%`` is a comment and vanishes from the page: a
    wrapped sentence such as "... {glue:text}`x`\\n% of the draws" loses its end. Code
    cells are exempt (``%`` there is Python or an IPython magic)."""
    pages = [*sorted((ROOT / "book").glob("*.md")), *sorted((ROOT / "book").glob("*/*.md"))]
    found = []
    for path in pages:
        in_code = False
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.startswith("```"):
                in_code = not in_code
            elif not in_code and line.startswith("%"):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line[:60]}")
    assert not found, "prose lines that MyST reads as comments:\n" + "\n".join(found)
