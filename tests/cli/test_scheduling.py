"""The scheduler examples (examples/scheduling/) against the emulator: the cron script tick by tick in a subprocess,
the plain-Python steps the Airflow DAG and the Prefect flow call, and the DAG and flow files themselves (they must
compile and import nothing but the steps, their scheduler and the standard library)."""

from __future__ import annotations

import ast
import json
import os
import py_compile
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest

from polars_gemini.core.errors import BudgetExceededError, RunTimeoutError
from polars_gemini.emulator import Emulator
from testing_support import echo

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scheduling"
KEY = "scheduling-test-key"
REVIEWS = ["great", "bad", "great", "fine"]


@pytest.fixture
def slow() -> Iterator[Emulator]:
    """Jobs stay pending for 600 simulated seconds, until `advance_time` moves the clock past them."""
    with Emulator(responder=echo, pending_seconds=600) as emulator:
        yield emulator


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.parquet"
    pl.DataFrame({"id": [1, 2, 3, 4], "review": REVIEWS}).write_parquet(path)
    return path


# -- cron.sh ------------------------------------------------------------------------------------------------------


def tick(emu: Emulator, reviews: Path, root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """One cron tick: the script, with the venv's `polars-gemini` first on PATH, against the emulator."""
    environ = {
        **os.environ, "GEMINI_API_KEY": KEY, "GOOGLE_GEMINI_BASE_URL": emu.url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "INPUT": str(reviews), "RUNS": str(root / "runs"), "OUT_DIR": str(root / "out"), "DAY": "2026-11-25",
        "TEMPLATE": "Label: {review}", **env,
    }  # fmt: skip
    return subprocess.run(["bash", str(EXAMPLES / "cron.sh")], env=environ, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_cron_ticks_submit_once_finish_later_then_do_nothing(slow: Emulator, reviews: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "reviews-2026-11-25.parquet"
    done = tmp_path / "runs" / "reviews-2026-11-25.done.json"

    first = tick(slow, reviews, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "submitting" in first.stderr and slow.calls("batches.create") == 1
    assert [j["metadata"]["state"] for j in slow.jobs.values()] == ["BATCH_STATE_PENDING"]
    assert not out.exists() and not done.exists()
    manifest = json.loads((tmp_path / "runs" / "reviews-2026-11-25" / "manifest.json").read_text())
    assert manifest["options"]["stuck_after"] == 30 and manifest["options"]["fallback"] == "batch"

    pending = tick(slow, reviews, tmp_path)  # the job is still pending: exit 0, nothing created, nothing written
    assert pending.returncode == 0, pending.stderr
    assert "still pending" in pending.stderr and slow.calls("batches.create") == 1 and not out.exists()

    slow.advance_time(601)
    second = tick(slow, reviews, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "done: wrote" in second.stderr
    result = pl.read_parquet(out)
    assert result.get_column("id").to_list() == [1, 2, 3, 4]
    assert result.get_column("response").to_list() == [f"echo: Label: {r}" for r in REVIEWS]
    assert json.loads(done.read_text())["status"] == "done"

    slow.clear_requests()
    third = tick(slow, reviews, tmp_path)
    assert third.returncode == 0, third.stderr
    assert "done already" in third.stderr
    assert slow.requests == []  # nothing sent at all, not even a poll
    assert slow.calls("batches.create") == 1 and len(slow.jobs) == 1  # all along: one job, created once
    assert KEY not in first.stderr + second.stderr + third.stderr


def test_cron_over_budget_is_exit_3_and_sends_nothing(emu: Emulator, reviews: Path, tmp_path: Path) -> None:
    proc = tick(emu, reviews, tmp_path, MAX_COST="0")
    assert proc.returncode == 3 and "refused" in proc.stderr
    assert emu.requests == []
    assert not (tmp_path / "runs" / "reviews-2026-11-25" / "manifest.json").exists()  # the next tick submits


def test_cron_halts_on_too_many_failed_rows(emu: Emulator, tmp_path: Path) -> None:
    src = tmp_path / "in.parquet"
    pl.DataFrame({"review": ["a", None, "c"]}).write_parquet(src)  # a null cell: that row fails, nothing is sent
    assert tick(emu, src, tmp_path).returncode == 0  # submitted (the emulator's jobs finish at once)
    halted = tick(emu, src, tmp_path)
    assert halted.returncode == 4 and "too many failed rows" in halted.stderr
    assert pl.read_parquet(tmp_path / "out" / "reviews-2026-11-25.parquet").height == 3  # written all the same
    emu.clear_requests()
    again = tick(emu, src, tmp_path)
    assert again.returncode == 4 and "halted" in again.stderr and emu.requests == []


# -- steps.py -----------------------------------------------------------------------------------------------------


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """examples/scheduling/steps.py, imported as the DAG and the flow import it (from their own folder)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    sys.modules.pop("steps", None)
    import steps as module

    yield module
    sys.modules.pop("steps", None)


@pytest.fixture
def keyed(slow: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The environment a scheduler's worker has: the key, and the SDK pointed at the emulator."""
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", slow.url)
    return slow


def test_steps_submit_poll_finish(steps: ModuleType, keyed: Emulator, reviews: Path, tmp_path: Path) -> None:
    ckpt, out = tmp_path / "runs" / "day", tmp_path / "out" / "day.parquet"
    assert not steps.submitted(ckpt)
    summary = steps.submit_step(reviews, ckpt, template="Label: {review}", model="gemini-2.5-flash", max_cost=5.0)
    assert summary["pending"] == 3 and summary["requests"] == 3  # "great" twice: one request
    assert steps.submitted(ckpt) and keyed.calls("batches.create") == 1
    again = steps.submit_step(reviews, ckpt, template="Label: {review}", model="gemini-2.5-flash", max_cost=5.0)
    assert again["jobs"] == summary["jobs"] and keyed.calls("batches.create") == 1  # a retried submit: no new job
    assert steps.poll_step(ckpt) is False
    with pytest.raises(RunTimeoutError):
        steps.finish_step(ckpt, out)  # not finished: refuses rather than wait
    assert not out.exists()
    keyed.advance_time(601)
    assert steps.poll_step(ckpt) is True
    report = steps.finish_step(ckpt, out)
    assert report["rows"] == 4 and report["failed"] == 0 and report["output"] == str(out)
    assert pl.read_parquet(out).get_column("response").to_list() == [f"echo: Label: {r}" for r in REVIEWS]
    assert [p.name for p in out.parent.iterdir()] == ["day.parquet"]  # no partial file left behind
    assert keyed.calls("batches.create") == 1 and len(keyed.jobs) == 1


def test_finish_step_writes_then_raises_on_too_many_failed_rows(
    steps: ModuleType, keyed: Emulator, tmp_path: Path
) -> None:
    src, ckpt, out = tmp_path / "in.parquet", tmp_path / "ckpt", tmp_path / "out.parquet"
    pl.DataFrame({"review": ["a", None, "c", "d"]}).write_parquet(src)
    steps.submit_step(src, ckpt, template="R: {review}", model="gemini-2.5-flash")
    keyed.advance_time(601)
    assert steps.poll_step(ckpt) is True
    with pytest.raises(steps.TooManyFailedRows, match="1 of 4 rows failed") as caught:
        steps.finish_step(ckpt, out)
    assert caught.value.report["failed"] == 1 and pl.read_parquet(out).height == 4
    assert steps.finish_step(ckpt, out, max_failed=0.25)["allowed"] == 1  # a fraction of the rows


def test_submit_step_over_budget_sends_nothing(
    steps: ModuleType, keyed: Emulator, reviews: Path, tmp_path: Path
) -> None:
    with pytest.raises(BudgetExceededError):
        steps.submit_step(reviews, tmp_path / "ckpt", template="L: {review}", model="gemini-2.5-flash", max_cost=0)
    assert keyed.requests == [] and not steps.submitted(tmp_path / "ckpt")


def test_poll_step_on_a_busy_checkpoint_is_not_yet(
    steps: ModuleType, keyed: Emulator, reviews: Path, tmp_path: Path
) -> None:
    ckpt = tmp_path / "ckpt"
    steps.submit_step(reviews, ckpt, template="L: {review}", model="gemini-2.5-flash")
    keyed.advance_time(601)
    holder = subprocess.Popen(  # another process holds the checkpoint (as an overlapping tick would)
        [sys.executable, "-c", "import sys, fcntl; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('held', flush=True); sys.stdin.read()", str(ckpt / ".lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert steps.poll_step(ckpt) is False
    finally:
        holder.communicate("")
    assert steps.poll_step(ckpt) is True


# -- the DAG and the flow -----------------------------------------------------------------------------------------


def imported(path: Path) -> set[str]:
    """The top-level packages a file imports (anywhere in it)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__"}


@pytest.mark.parametrize(("name", "scheduler"), [("airflow_dag.py", "airflow"), ("prefect_flow.py", "prefect")])
def test_the_dag_and_the_flow_compile_and_import_only_steps_and_their_scheduler(
    name: str, scheduler: str, tmp_path: Path
) -> None:
    path = EXAMPLES / name
    py_compile.compile(str(path), cfile=str(tmp_path / f"{name}c"), doraise=True)
    assert imported(path) == {"steps", scheduler}
    calls = {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
    assert {"submit_step", "poll_step", "finish_step"} <= calls  # the logic lives in steps.py, tested above


def test_steps_import_no_scheduler() -> None:
    assert imported(EXAMPLES / "steps.py") == {"polars", "polars_gemini"}
