"""docs/python-api.md is what a new user follows: every code block runs, in order, on the twin;
every public name of :mod:`hil.api` is in its reference; the notebook and the scripts of
``examples/`` run end to end (outputs in a temporary folder, never in the repository)."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import hil.api as rh

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "python-api.md"
NOTEBOOK = ROOT / "examples" / "getting_started.ipynb"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def doc_blocks() -> list[str]:
    guide = DOC.read_text(encoding="utf-8").split("## Reference")[0]
    return BLOCK.findall(guide)


def test_every_code_block_of_the_guide_runs_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__doc__"}
    blocks = doc_blocks()
    assert len(blocks) >= 6
    for i, block in enumerate(blocks):
        exec(compile(block, f"python-api.md block {i + 1}", "exec"), namespace)  # noqa: S102
    run = namespace["run"]
    assert isinstance(run, rh.Run) and run.status == "completed"
    assert (tmp_path / "report.html").is_file() and (tmp_path / "readings.csv").is_file()
    assert (tmp_path / "my_device.yaml").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["rram-hil.sqlite", "rram-hil-plots", "report.html", "readings.csv", "my_device.yaml"]
        + [p.name for p in tmp_path.iterdir() if p.name.startswith("rram-hil.sqlite-")]
    )


def test_every_public_name_is_in_the_reference() -> None:
    reference = DOC.read_text(encoding="utf-8").split("## Reference")[1]
    headings = set(re.findall(r"^### `([A-Za-z_]+)`", reference, re.M))
    assert set(rh.__all__) == headings
    for name in rh.__all__:
        obj = getattr(rh, name)
        assert inspect.getdoc(obj), f"hil.api.{name} has no docstring"


@pytest.mark.parametrize("cls", [rh.Bench, rh.Database, rh.Run, rh.Calibration])
def test_every_public_method_is_in_the_reference_and_has_a_docstring(cls: type) -> None:
    section = DOC.read_text(encoding="utf-8").split(f"### `{cls.__name__}`")[1].split("\n### ")[0]
    for name, member in vars(cls).items():
        if name.startswith("_") or not (callable(member) or isinstance(member, property)):
            continue
        assert f"`{name}" in section, f"{cls.__name__}.{name} is not in the reference"
        assert inspect.getdoc(member), f"{cls.__name__}.{name} has no docstring"


def test_the_reference_signatures_are_the_code_s() -> None:
    """Each function's reference line names its parameters in order, with its defaults."""
    reference = DOC.read_text(encoding="utf-8").split("## Reference")[1]
    for name in rh.__all__:
        obj = getattr(rh, name)
        if not inspect.isfunction(obj):
            continue
        section = reference.split(f"### `{name}`")[1].split("\n### ")[0]
        m = re.search(rf"`{name}\((.*?)\)( ->|`)", section, re.S)
        assert m, f"no signature of {name} in the reference"
        documented = re.sub(r"\s+", " ", m.group(1))
        for param in inspect.signature(obj).parameters.values():
            if param.kind is param.VAR_KEYWORD:
                assert f"**{param.name}" in documented, name
                continue
            text = param.name if param.default is param.empty else f"{param.name}={param.default!r}"
            text = text.replace("'", '"')
            assert text in documented, f"{name}: '{text}' not in '{documented}'"


def test_the_notebook_is_the_guide_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.source for c in code] == [b.rstrip("\n") for b in doc_blocks()]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert "../shared" not in NOTEBOOK.read_text(encoding="utf-8")


def test_the_notebook_runs_end_to_end(tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "completed" in text and "outside the allowed range" in text
    assert (tmp_path / "report.html").is_file() and (tmp_path / "rram-hil.sqlite").is_file()


def _script(name: str, args: list[str], cwd: Path) -> str:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pulse_and_read_script(tmp_path: Path) -> None:
    out = _script("pulse_and_read.py", ["-o", "readings.csv"], tmp_path)
    assert "safe state confirmed: True" in out
    assert "40 readings written to readings.csv" in out and (tmp_path / "readings.csv").is_file()


def test_run_and_analyze_script(tmp_path: Path) -> None:
    out = _script(
        "run_and_analyze.py",
        ["--db", "x.sqlite", "--out", "out", "--cycles", "2", "--pulses", "10"],
        tmp_path,
    )
    assert "run 1: completed" in out and "g_max_S" in out
    assert (tmp_path / "out" / "report-1.html").is_file()
    assert list((tmp_path / "out" / "plots").glob("x-run-0001-*.png"))  # named by its database
