"""The ETL command line in a subprocess against the emulator (GOOGLE_GEMINI_BASE_URL points google-genai at it):
every exit code, `--json` parsed back, files in and out, and a daily run over a growing input paying only new rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from polars_gemini.emulator import EmulatedError, Emulator, ResponderRequest
from testing_support import Place, echo


def cli(
    emu: Emulator, *args: str, timeout: float = 120, place: Place | None = None
) -> subprocess.CompletedProcess[str]:
    """The command in a subprocess; with `place`, its checkpoint's credentials in the environment (object storage)."""
    env = {**os.environ, "GEMINI_API_KEY": "cli-test-key", "GOOGLE_GEMINI_BASE_URL": emu.url}
    env.update(place.env if place is not None else {})
    return subprocess.run([sys.executable, "-m", "polars_gemini.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def report(proc: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(proc.stdout)


@pytest.fixture
def reviews(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.parquet"
    pl.DataFrame({"id": [1, 2, 3, 4], "review": ["great", "bad", "great", "fine"]}).write_parquet(path)
    return path


def sent_prompts(emu: Emulator) -> list[str]:
    prompts = []
    for r in emu.requests:
        if r.endpoint == "batches.create" and r.body_json:
            config = r.body_json["batch"].get("inputConfig") or r.body_json["batch"]["input_config"]
            for item in config["requests"]["requests"]:
                prompts.append(item["request"]["contents"][0]["parts"][0]["text"])
    return prompts


def test_run_writes_the_result_file_and_reports_json(emu: Emulator, reviews: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "labelled.parquet"
    proc = cli(emu, "run", str(reviews), "-t", "Label: {review}", "-m", "gemini-2.5-flash", "-o", str(out), "--json",
               "--poll-interval", "0.05")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = pl.read_parquet(out)
    assert result.get_column("id").to_list() == [1, 2, 3, 4]
    assert result.get_column("response").to_list() == [f"echo: Label: {r}" for r in ["great", "bad", "great", "fine"]]
    data = report(proc)
    assert data["status"] == "done" and data["rows"] == 4 and data["failed"] == 0 and data["requests"] == 3
    assert "cli-test-key" not in proc.stdout + proc.stderr


def test_a_daily_run_over_a_growing_input_pays_only_for_new_rows(emu: Emulator, tmp_path: Path) -> None:
    src, ckpt, out = tmp_path / "in.csv", tmp_path / "ckpt", tmp_path / "out.csv"
    pl.DataFrame({"review": ["a", "b"]}).write_csv(src)
    args = ("run", str(src), "-t", "R: {review}", "-m", "gemini-2.5-flash", "-o", str(out), "--checkpoint", str(ckpt),
            "--poll-interval", "0.05")  # fmt: skip
    assert cli(emu, *args).returncode == 0
    assert sorted(sent_prompts(emu)) == ["R: a", "R: b"]
    pl.DataFrame({"review": ["a", "b", "c"]}).write_csv(src)  # the next day: one new row
    emu.clear_requests()
    proc = cli(emu, *args)
    assert proc.returncode == 0, proc.stderr
    assert sent_prompts(emu) == ["R: c"]
    assert pl.read_csv(out).get_column("response").to_list() == ["echo: R: a", "echo: R: b", "echo: R: c"]


def test_estimate_sends_nothing(emu: Emulator, reviews: Path) -> None:
    proc = cli(emu, "estimate", str(reviews), "-t", "Label: {review}", "-m", "gemini-2.5-flash", "--json")
    assert proc.returncode == 0, proc.stderr
    est = report(proc)["estimate"]
    assert est["requests"] == 3 and est["rows"] == 4 and est["cost"] > 0
    assert emu.requests == []


def test_budget_refusal_is_exit_3_and_sends_nothing(emu: Emulator, reviews: Path, tmp_path: Path) -> None:
    proc = cli(emu, "run", str(reviews), "-t", "Label: {review}", "-m", "gemini-2.5-flash", "-o",
               str(tmp_path / "o.parquet"), "--max-cost", "0", "--json")  # fmt: skip
    assert proc.returncode == 3
    assert report(proc)["status"] == "over_budget" and "max_cost" in proc.stderr
    assert emu.requests == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("-t", "Label: {nope}", "-m", "gemini-2.5-flash"), "nope"),
        (("-t", "Label: {review}", "-m", "gemini-9-turbo"), "Unknown model"),
        (("-t", "Label: {review}", "-m", "gemini-2.5-flash", "--schema", "missing.json"), "schema"),
    ],
)
def test_bad_input_is_exit_2_and_sends_nothing(
    emu: Emulator, reviews: Path, args: tuple[str, ...], needle: str
) -> None:
    proc = cli(emu, "estimate", str(reviews), *args)
    assert proc.returncode == 2 and needle in proc.stderr
    assert emu.requests == []


def test_unknown_file_types_are_exit_2(emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "in.xlsx").write_text("x")
    proc = cli(emu, "estimate", str(tmp_path / "in.xlsx"), "-t", "{a}", "-m", "gemini-2.5-flash")
    assert proc.returncode == 2 and "unknown file type .xlsx" in proc.stderr


def test_failed_rows_above_max_failed_are_exit_4_with_the_output_written(emu: Emulator, tmp_path: Path) -> None:
    src, out = tmp_path / "in.ndjson", tmp_path / "out.ndjson"
    pl.DataFrame({"review": ["a", None, "c"]}).write_ndjson(src)
    base = ("run", str(src), "-t", "R: {review}", "-m", "gemini-2.5-flash", "-o", str(out), "--poll-interval", "0.05")
    proc = cli(emu, *base, "--json")
    assert proc.returncode == 4 and report(proc)["failed"] == 1
    assert pl.read_ndjson(out).height == 3
    assert cli(emu, *base, "--max-failed", "1").returncode == 0
    assert cli(emu, *base, "--max-failed", "0.5").returncode == 0  # a fraction of the rows


def test_typed_schema_from_a_json_file_into_csv(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps({"label": {"enum": ["pos", "neg"]}, "score": "Float64", "tags": ["String"]}))
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    pl.DataFrame({"review": ["a", "b"]}).write_csv(src)
    with Emulator() as emu:  # the default responder answers schema requests with conforming JSON
        proc = cli(emu, "run", str(src), "-t", "R: {review}", "-m", "gemini-2.5-flash", "--schema", str(schema),
                   "-o", str(out), "--poll-interval", "0.05")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = pl.read_csv(out)
    assert result.columns == ["review", "label", "score", "tags", "response_error"]
    assert set(result.get_column("label")) <= {"pos", "neg"}
    assert all(json.loads(t) is not None for t in result.get_column("tags"))  # a list, as JSON text in a CSV


def test_submit_exits_then_status_resume_and_list(reviews: Path, tmp_path: Path, place: Place) -> None:
    ckpt, out = place.checkpoint, tmp_path / "out.ipc"
    with Emulator(responder=echo, pending_seconds=600) as emu:
        proc = cli(emu, "submit", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash",
                   "--checkpoint", ckpt, place=place)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == ckpt
        status = cli(emu, "status", ckpt, "--json", place=place)
        assert status.returncode == 5 and report(status)["pending"] == 4  # still pending
        waiting = cli(emu, "resume", ckpt, "--no-wait", "--json", place=place)
        assert waiting.returncode == 5 and report(waiting)["status"] == "pending"
        listed = cli(emu, "list", "--json")
        assert listed.returncode == 0 and len(report(listed)["jobs"]) == 1
        emu.advance_time(601)  # the job is done now
        done = cli(emu, "resume", ckpt, "-o", str(out), "--poll-interval", "0.05", "--json", place=place)
        assert done.returncode == 0, done.stderr
        assert report(done)["status"] == "done" and pl.read_ipc(out).height == 4
        assert cli(emu, "status", ckpt, "--json", place=place).returncode == 0
        assert len(emu.jobs) == 1


def test_cancel(reviews: Path, place: Place) -> None:
    ckpt = place.checkpoint
    with Emulator(responder=echo, pending_seconds=60) as emu:
        assert cli(emu, "submit", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash",
                   "--checkpoint", ckpt, place=place).returncode == 0  # fmt: skip
        proc = cli(emu, "cancel", ckpt, "--json", place=place)
        assert proc.returncode == 0, proc.stderr
        assert report(proc)["status"] == "cancelled"
        assert [j["metadata"]["state"] for j in emu.jobs.values()] == ["BATCH_STATE_CANCELLED"]


def test_timeout_is_exit_5_and_a_later_resume_finishes(reviews: Path, tmp_path: Path) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.parquet"
    with Emulator(responder=echo, pending_seconds=600) as emu:
        proc = cli(emu, "run", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash", "-o", str(out),
                   "--checkpoint", str(ckpt), "--timeout", "0.3", "--poll-interval", "0.05")  # fmt: skip
        assert proc.returncode == 5 and f"polars-gemini resume {ckpt}" in proc.stderr
        assert not out.exists()
        emu.advance_time(601)
        assert cli(emu, "resume", str(ckpt), "-o", str(out), "--poll-interval", "0.05").returncode == 0
        assert pl.read_parquet(out).height == 4 and len(emu.jobs) == 1


def test_a_killed_run_is_finished_by_resume(reviews: Path, tmp_path: Path) -> None:
    import signal
    import time

    ckpt, out = tmp_path / "ckpt", tmp_path / "out.parquet"
    with Emulator(responder=echo, pending_seconds=600) as emu:
        env = {**os.environ, "GEMINI_API_KEY": "cli-test-key", "GOOGLE_GEMINI_BASE_URL": emu.url}
        proc = subprocess.Popen(
            [sys.executable, "-m", "polars_gemini.cli", "run", str(reviews), "-t", "L: {review}", "-m",
             "gemini-2.5-flash", "-o", str(out), "--checkpoint", str(ckpt), "--poll-interval", "0.05"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while emu.calls("batches.get") == 0:  # created and being polled: kill it mid-wait
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        emu.advance_time(601)
        done = cli(emu, "resume", str(ckpt), "-o", str(out), "--poll-interval", "0.05")
        assert done.returncode == 0, done.stderr
        assert pl.read_parquet(out).get_column("response").null_count() == 0 and len(emu.jobs) == 1


def test_a_stuck_job_is_finished_at_the_flex_tier_by_a_later_resume(reviews: Path, tmp_path: Path) -> None:
    ckpt, out = tmp_path / "ckpt", tmp_path / "out.parquet"
    with Emulator(responder=echo) as emu:
        emu.slow_next_jobs(count=1)  # PENDING until it would expire
        proc = cli(emu, "submit", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash", "--checkpoint",
                   str(ckpt), "--stuck-after", str(1 / 3600), "--fallback", "flex")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        time.sleep(1.1)  # the job is now older than --stuck-after
        done = cli(emu, "resume", str(ckpt), "-o", str(out), "--poll-interval", "0.05", "--json")
        assert done.returncode == 0, done.stderr
        assert "cancelling it" in done.stderr  # the warning says what happened
        assert pl.read_parquet(out).get_column("response").to_list() == [
            f"echo: L: {r}" for r in ["great", "bad", "great", "fine"]
        ]
        answered = emu.answered()
        assert sorted((a.route, a.tier, a.prompt) for a in answered) == [
            ("generate", "flex", f"L: {r}") for r in ["bad", "fine", "great"]
        ]
        assert [j["metadata"]["state"] for j in emu.jobs.values()] == ["BATCH_STATE_CANCELLED"]


def test_bad_stuck_after_is_exit_2(emu: Emulator, reviews: Path, tmp_path: Path) -> None:
    proc = cli(emu, "submit", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash", "--checkpoint",
               str(tmp_path / "ckpt"), "--stuck-after", "-1")  # fmt: skip
    assert proc.returncode == 2 and "stuck_after is a number of hours > 0" in proc.stderr
    assert not emu.requests


def test_resume_no_wait_sends_a_due_retry_round_in_the_same_tick(reviews: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    failed_once: set[str] = set()

    def flaky(request: ResponderRequest) -> dict:
        if request.text == "L: bad" and request.text not in failed_once:
            failed_once.add(request.text)
            raise EmulatedError(500, "backend exploded", "INTERNAL")
        return echo(request)

    with Emulator(responder=flaky, pending_seconds=600) as emu:
        proc = cli(emu, "submit", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash", "--checkpoint",
                   str(ckpt))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        emu.advance_time(601)  # the first job is done, with one request failed (retryable)
        tick = cli(emu, "resume", str(ckpt), "--no-wait", "--json")
        assert tick.returncode == 5 and report(tick)["status"] == "pending"
        assert emu.calls("batches.create") == 2  # the retry round went out in this tick, not the next one
        emu.advance_time(601)
        done = cli(emu, "resume", str(ckpt), "--no-wait", "--json")
        assert done.returncode == 0, done.stderr
        assert report(done)["failed"] == 0


def test_a_checkpoint_busy_in_another_process_is_exit_5_try_later(reviews: Path, place: Place) -> None:
    import polars_gemini

    ckpt = place.checkpoint
    with Emulator(responder=echo, pending_seconds=600) as emu:
        assert cli(emu, "submit", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash", "--checkpoint",
                   ckpt, place=place).returncode == 0  # fmt: skip
        holder = polars_gemini.resume(ckpt, client=emu.client(), submit=False, progress=False,
                                      storage_options=place.storage_options)  # fmt: skip
        try:
            tick = cli(emu, "resume", ckpt, "--no-wait", "--json", place=place)
            output = cli(emu, "submit", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash", "--checkpoint",
                         ckpt, "--output", "later.parquet", place=place)  # fmt: skip
        finally:
            holder.close()
        assert tick.returncode == 5, tick.stderr
        assert report(tick)["status"] == "pending"
        holder_is = "another process" if place.kind == "dir" else "another worker"
        assert f"is in use by {holder_is}" in tick.stderr
        assert output.returncode == 5 and f"is in use by {holder_is}" in output.stderr  # nothing written meanwhile
        assert len(emu.jobs) == 1


@pytest.mark.parametrize("name", ["out.xlsx", "folder.parquet"])
def test_run_with_an_output_it_cannot_write_is_exit_2_and_sends_nothing(
    emu: Emulator, reviews: Path, tmp_path: Path, name: str
) -> None:
    (tmp_path / "folder.parquet").mkdir()
    proc = cli(emu, "run", str(reviews), "-t", "L: {review}", "-m", "gemini-2.5-flash", "-o", str(tmp_path / name))
    assert proc.returncode == 2, proc.stderr
    assert "unknown file type" in proc.stderr or "is a directory" in proc.stderr
    assert not emu.requests
