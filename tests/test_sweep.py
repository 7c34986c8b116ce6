"""Parameter sweeps with real Jupyter kernels, on a notebook that finishes in a second."""
import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import vqldm_nb.sweep as sweep

WORK_CELL = """\
import json, os, time
from pathlib import Path
events = Path({events!r})
with events.open("a") as f:
    f.write(f"start {{a}} {{b}} {{time.time()}}\\n")
hold = Path({hold!r})
deadline = time.time() + 120
while a == 2 and hold.exists() and time.time() < deadline:
    time.sleep(0.1)
if a == 3 and not Path({fix!r}).exists():
    raise ValueError(f"a = {{a}} is not allowed")
with events.open("a") as f:
    f.write(f"end {{a}} {{b}} {{time.time()}}\\n")
with open("metrics.json", "w") as f:
    json.dump({{"score": a * b, "nested": {{"twice": 2 * a * b}}, "label": name,
               "omp_threads": os.environ.get("OMP_NUM_THREADS")}}, f)
"""


class Tiny:
    "A papermill notebook with a: int, b: float, name: str, and the files that steer it."

    def __init__(self, folder: Path):
        self.folder = folder
        self.events = folder / "events.txt"  # a line at the start of the work cell and one before metrics.json
        self.hold = folder / "hold"          # while it exists, the point a == 2 waits
        self.fix = folder / "fix"            # once it exists, the point a == 3 stops failing
        self.path = folder / "tiny.ipynb"
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('a = 1\nb = 0.5\nname = "tiny"')
        params.metadata["tags"] = ["parameters"]
        work = nbformat.v4.new_code_cell(WORK_CELL.format(events=str(self.events), hold=str(self.hold), fix=str(self.fix)))
        nb.cells = [params, work]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
        nbformat.write(nb, self.path)

    def runs(self, event="start") -> list[tuple[int, float]]:
        "Return `(a, b)` of every execution of the work cell that reached `event`."
        if not self.events.exists():
            return []
        lines = [line.split() for line in self.events.read_text().splitlines()]
        return [(int(a), float(b)) for kind, a, b, _ in lines if kind == event]


@pytest.fixture
def tiny(tmp_path) -> Tiny:
    return Tiny(tmp_path)


@pytest.fixture(scope="module")
def two_by_two(tmp_path_factory):
    "A 2 x 2 sweep where the points with a == 3 fail, run two at a time."
    folder = tmp_path_factory.mktemp("two_by_two")
    notebook = Tiny(folder)
    start = time.time()
    summary = sweep.run_sweep({"a": [1, 3], "b": [0.5, 2.0]}, folder / "sweep", notebook=notebook.path,
                              jobs=2, progress=False)
    return summary, notebook, time.time() - start


def status_of(sweep_dir: Path, name: str) -> dict:
    for folder in (sweep_dir / name, sweep_dir / f"{name}.failed"):
        if (folder / "status.json").exists():
            return json.loads((folder / "status.json").read_text())
    raise AssertionError(f"no status.json for point {name} in {sweep_dir}")


def test_grid_gives_one_row_per_point(two_by_two):
    summary, _, _ = two_by_two
    rows = list(csv.DictReader(summary.csv_path.open()))
    assert [r["point"] for r in rows] == ["a=1,b=0.5", "a=1,b=2.0", "a=3,b=0.5", "a=3,b=2.0"]
    assert [r["status"] for r in rows] == ["done", "done", "failed", "failed"]
    assert [r["score"] for r in rows[:2]] == ["0.5", "2.0"]
    assert [r["nested.twice"] for r in rows[:2]] == ["1.0", "4.0"]
    assert "label" not in rows[0]  # text metrics stay out of the table
    assert rows[2]["error"] == "ValueError: a = 3 is not allowed"
    assert (summary.sweep_dir / "plots" / "score.png").stat().st_size > 1000
    assert (summary.sweep_dir / "plots" / "nested.twice.png").is_file()


def test_finished_point_folder_is_complete(two_by_two):
    summary, _, _ = two_by_two
    for name in summary.done:
        folder = summary.sweep_dir / name
        for required in ("metrics.json", "report.ipynb", "report.html", "status.json", "worker.log"):
            assert (folder / required).is_file(), f"{name} lacks {required}"
    assert not list(summary.sweep_dir.glob("*.partial"))
    metrics = json.loads((summary.sweep_dir / "a=1,b=2.0" / "metrics.json").read_text())
    assert metrics["omp_threads"] == os.environ.get("OMP_NUM_THREADS", str(max(1, os.cpu_count() // 2)))
    executed = nbformat.read(summary.sweep_dir / "a=1,b=2.0" / "report.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert "b = 2.0" in injected[0].source


def test_failing_point_records_error_and_cell(two_by_two):
    summary, _, _ = two_by_two
    failed = summary.sweep_dir / "a=3,b=0.5.failed"
    status = json.loads((failed / "status.json").read_text())
    assert status["status"] == "failed"
    assert (status["ename"], status["evalue"]) == ("ValueError", "a = 3 is not allowed")
    assert status["cell"]["execution_count"] == 3  # parameters, injected parameters, work cell
    assert "raise ValueError" in status["cell"]["source"]
    assert any("ValueError" in line for line in status["traceback"])
    assert "a = 3 is not allowed" in (failed / "report.html").read_text()
    assert not (summary.sweep_dir / "a=3,b=0.5").exists()


def test_index_links_reports_and_shows_failures(two_by_two):
    summary, _, _ = two_by_two
    page = summary.index_path.read_text()
    assert 'href="a%3D1%2Cb%3D0.5/report.html"' in page
    assert 'href="a%3D3%2Cb%3D0.5.failed/report.html"' in page
    assert "ValueError: a = 3 is not allowed" in page
    assert "<summary>in cell [3]</summary>" in page
    assert 'src="plots/score.png"' in page


def test_jobs_two_runs_two_points_at_once(two_by_two):
    summary, _, _ = two_by_two
    intervals = [(s["started_at"], s["finished_at"]) for s in
                 (status_of(summary.sweep_dir, name) for name in (r["point"] for r in summary.rows))]
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running, max_running = 0, 0
    for _, change in events:
        running += change
        max_running = max(max_running, running)
    assert max_running == 2


def test_worker_threads_split_between_jobs(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(sweep.os, "cpu_count", lambda: 8)
    assert sweep._worker_environment(2)["OMP_NUM_THREADS"] == "4"
    assert sweep._worker_environment(16)["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert sweep._worker_environment(2)["OMP_NUM_THREADS"] == "3"


def test_rerun_skips_finished_and_retries_failed(tiny):
    sweep_dir = tiny.folder / "sweep"
    first = sweep.run_sweep({"a": [1, 3]}, sweep_dir, notebook=tiny.path, jobs=2, progress=False)
    assert first.failed == ["a=3"]
    finished = sweep_dir / "a=1" / "metrics.json"
    mtime = finished.stat().st_mtime_ns

    tiny.fix.touch()
    second = sweep.run_sweep({"a": [1, 3]}, sweep_dir, notebook=tiny.path, jobs=2, progress=False)
    assert (second.skipped, second.executed) == (1, 1)
    assert second.failed == []
    assert finished.stat().st_mtime_ns == mtime
    assert sorted(tiny.runs()) == [(1, 0.5), (3, 0.5), (3, 0.5)]
    assert not (sweep_dir / "a=3.failed").exists()
    assert json.loads((sweep_dir / "a=3" / "metrics.json").read_text())["score"] == 1.5

    third = sweep.run_sweep({"a": [1, 3]}, sweep_dir, notebook=tiny.path, jobs=2, progress=False)
    assert (third.skipped, third.executed) == (2, 0)
    assert len(tiny.runs()) == 3


@pytest.mark.parametrize("grid, message", [
    ({"c": [1]}, "unknown parameter 'c'"),
    ({"a": [1.5]}, "a=1.5 has type float, expected int"),
    ({"a": [1], "b": ["x"]}, "b='x' has type str, expected float"),
    ({"name": [1]}, "name=1 has type int, expected str"),
    ({"a": [True]}, "a=True has type bool, expected int"),
])
def test_invalid_grid_rejected_before_kernel(tiny, monkeypatch, grid, message):
    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started for an invalid grid")
    monkeypatch.setattr(sweep, "_start_worker", no_worker)
    sweep_dir = tiny.folder / "sweep"
    with pytest.raises(sweep.GridError) as error:
        sweep.run_sweep(grid, sweep_dir, notebook=tiny.path, progress=False)
    assert message in str(error.value)
    assert "valid parameters: a (int, default 1), b (float, default 0.5), name (str, default 'tiny')" in str(error.value)
    assert not sweep_dir.exists()


def test_command_line_values_checked_against_types(tiny):
    assert sweep.parse_grid_args(["a=1,2", "b=1", "name=x,y"], tiny.path) == {"a": [1, 2], "b": [1.0], "name": ["x", "y"]}
    with pytest.raises(sweep.GridError, match="'0.5' is not a valid int.*valid parameters: a \\(int"):
        sweep.parse_grid_args(["a=0.5"], tiny.path)
    with pytest.raises(sweep.GridError, match="unknown parameter 'seed'"):
        sweep.parse_grid_args(["seed=1"], tiny.path)


def test_yaml_grid_types_checked(tiny):
    grid_file = tiny.folder / "grid.yaml"
    grid_file.write_text("a: [1, 2]\nb: 1.0e-3\nname: [x, 'y, z']\n")
    grid = sweep.load_grid_yaml(grid_file)
    assert grid == {"a": [1, 2], "b": [0.001], "name": ["x", "y, z"]}
    grid_file.write_text("b: [1e-3]\n")  # YAML 1.1 reads this as text
    with pytest.raises(sweep.GridError, match="write 1.0e-3"):
        sweep.run_sweep(sweep.load_grid_yaml(grid_file), tiny.folder / "sweep", notebook=tiny.path, progress=False)
    assert not (tiny.folder / "sweep").exists()


def sweep_command(tiny: Tiny, name: str, *options: str) -> list[str]:
    code = ("import argparse, sys\n"
            "from vqldm_nb.sweep import add_sweep_subcommand, sweep_main\n"
            "parser = argparse.ArgumentParser(prog='vqldm')\n"
            "add_sweep_subcommand(parser.add_subparsers(dest='command'))\n"
            "sys.exit(sweep_main(parser.parse_args(sys.argv[1:])))\n")
    return [sys.executable, "-c", code, "sweep", "--name", name, "--notebook", str(tiny.path),
            "--out-root", str(tiny.folder / "runs"), "--no-progress", *options]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def test_sigterm_keeps_finished_points(tiny):
    tiny.hold.touch()
    process = subprocess.Popen(sweep_command(tiny, "stop", "-p", "a=1,2,4", "--jobs", "1"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sweep_dir = tiny.folder / "runs" / "stop"
    try:
        wait_for(lambda: (sweep_dir / "a=1" / "status.json").exists() and (2, 0.5) in tiny.runs(), 60,
                 "point a=1 to finish and a=2 to start")
        mtime = (sweep_dir / "a=1" / "metrics.json").stat().st_mtime_ns
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=40)
    finally:
        process.kill()
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    assert json.loads((sweep_dir / "a=1" / "status.json").read_text())["status"] == "done"
    assert (sweep_dir / "a=1" / "report.html").is_file()
    assert not (sweep_dir / "a=2").exists()
    assert not (sweep_dir / "a=2.partial").exists()
    assert (2, 0.5) not in tiny.runs("end")
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert [r["status"] for r in rows] == ["done", "not run", "not run"]

    tiny.hold.unlink()
    summary = sweep.run_sweep({"a": [1, 2, 4]}, sweep_dir, notebook=tiny.path, jobs=2, progress=False)
    assert (summary.skipped, summary.executed) == (1, 2)
    assert summary.done == ["a=1", "a=2", "a=4"]
    assert (sweep_dir / "a=1" / "metrics.json").stat().st_mtime_ns == mtime
    assert tiny.runs("end").count((1, 0.5)) == 1
    assert tiny.runs("end").count((2, 0.5)) == 1  # the interrupted kernel did not go on after the hold was lifted


def test_pipeline_out_dir_is_reserved(tmp_path):
    with pytest.raises(sweep.GridError, match="'out_dir' is set by the sweep itself"):
        sweep.run_sweep({"seed": [0, 1], "out_dir": ["x"]}, tmp_path / "sweep", progress=False)
    assert not (tmp_path / "sweep").exists()


def test_command_with_yaml_and_options(tiny, capsys):
    grid_file = tiny.folder / "grid.yaml"
    grid_file.write_text("a: [1, 2]\nb: [9.0]\n")
    parser = argparse.ArgumentParser(prog="vqldm")
    sweep.add_sweep_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sweep", "--name", "cli", "--notebook", str(tiny.path), "--out-root", str(tiny.folder / "runs"),
                              "--grid", str(grid_file), "-p", "b=0.25", "--jobs", "2", "--no-progress"])
    assert sweep.sweep_main(args) == 0
    assert "2 of 2 points finished" in capsys.readouterr().out
    rows = list(csv.DictReader((tiny.folder / "runs" / "cli" / "summary.csv").open()))
    assert [(r["a"], r["b"], r["score"]) for r in rows] == [("1", "0.25", "0.25"), ("2", "0.25", "0.5")]


def test_command_rejects_bad_requests(tiny, capsys):
    parser = argparse.ArgumentParser(prog="vqldm")
    sweep.add_sweep_subcommand(parser.add_subparsers(dest="command"))
    common = ["--notebook", str(tiny.path), "--out-root", str(tiny.folder / "runs"), "--no-progress"]
    cases = [(["--name", "x", "-p", "a=1.5"], "is not a valid int"),
             (["--name", "x"], "the grid is empty"),
             (["--name", "../x", "-p", "a=1"], "invalid sweep name"),
             (["--name", "x", "-p", "a=1", "--jobs", "0"], "jobs must be a positive integer"),
             (["--name", "x", "--grid", str(tiny.folder / "missing.yaml")], "grid file not found")]
    for argv, message in cases:
        assert sweep.sweep_main(parser.parse_args(["sweep", *argv, *common])) == 2
        assert message in capsys.readouterr().err
    assert not (tiny.folder / "runs").exists()


@pytest.mark.parametrize("grid, message", [
    ({"preset": ["quick", "huge"]}, "point preset=huge: unknown preset 'huge'"),
    ({"prior": ["gan"]}, "point prior=gan: unknown prior 'gan'"),
    ({"data": ["no-such-file.tsv"]}, "no-such-file.tsv"),
])
def test_pipeline_values_checked_before_kernel(tmp_path, monkeypatch, grid, message):
    def no_worker(*args, **kwargs):
        raise AssertionError("a worker was started for an invalid grid")
    monkeypatch.setattr(sweep, "_start_worker", no_worker)
    with pytest.raises(sweep.GridError) as error:
        sweep.run_sweep(grid, tmp_path / "sweep", progress=False)
    assert message in str(error.value)
    assert not (tmp_path / "sweep").exists()


def test_pipeline_relative_data_made_absolute(tmp_path, monkeypatch):
    data = tmp_path / "beats.tsv"
    data.write_text("".join(f"{i % 2}\t" + "\t".join(str(v) for v in range(8)) + "\n" for i in range(10)))
    started = []
    def record_worker(context, sweep_dir, name, spec):
        started.append(spec)
        raise KeyboardInterrupt  # stop the sweep at its first point: the parameters are all this test needs
    monkeypatch.setattr(sweep, "_start_worker", record_worker)
    monkeypatch.chdir(tmp_path)
    with pytest.raises((KeyboardInterrupt, sweep.SweepInterrupted)):
        sweep.run_sweep({"data": ["beats.tsv"]}, tmp_path / "sweep", base_parameters={"preset": "quick"}, progress=False)
    assert started, "no point was started"
    assert started[0]["parameters"]["data"] == str(data.resolve())
