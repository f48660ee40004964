"""Jobs that never get stuck: a job PENDING/RUNNING past `stuck_after`, or one that EXPIRED, has its unanswered
requests sent again by the chosen fallback (Flex tier or a new batch job); what it answered is kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from google.genai import types

import polars_gemini
from polars_gemini.core.errors import ConfigurationError, GeminiBatchWarning
from polars_gemini.emulator import Emulator
from polars_gemini.emulator.s3 import S3Emulator
from testing_support import FAST, echo, make_place

STUCK = 1 / 3600  # one second, in hours


def _frame(n: int = 12) -> pl.DataFrame:
    return pl.DataFrame({"text": [f"row {i}" for i in range(n)]})


def _generate_prompts(emu: Emulator) -> list[tuple[str, str | None]]:
    """(prompt, service tier) of every generateContent call the emulator answered."""
    calls = []
    for r in emu.requests:
        if r.endpoint == "models.generateContent" and r.body_json:
            text = r.body_json["contents"][0]["parts"][0]["text"]
            calls.append((text, r.body_json.get("serviceTier")))
    return calls


def test_a_stuck_job_is_cancelled_and_its_requests_go_through_flex_once() -> None:
    with Emulator(responder=echo, pending_seconds=10**9) as emu:
        with pytest.warns(GeminiBatchWarning, match="stuck_after|PENDING for more than"):
            out = _frame().gemini.batch("{text}", model="gemini-2.5-flash", client=emu.client(), stuck_after=STUCK,
                                        fallback="flex", max_requests_per_job=5, **FAST)  # fmt: skip
        assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(12)]
        assert out.get_column("response_error").null_count() == 12
        jobs = emu.jobs
        assert len(jobs) == 3 and all(j["metadata"]["state"] == "BATCH_STATE_CANCELLED" for j in jobs.values())
        calls = _generate_prompts(emu)
        counts = Counter(prompt for prompt, _ in calls)
        assert sorted(counts) == sorted(f"row {i}" for i in range(12)) and set(counts.values()) == {1}
        assert {tier for _, tier in calls} == {"flex"}


def test_flex_answers_are_priced_at_the_flex_rate_half_of_standard() -> None:
    with Emulator(responder=echo, pending_seconds=10**9) as emu, warnings.catch_warnings():
        warnings.simplefilter("ignore", GeminiBatchWarning)
        run = _frame(4).gemini.submit("{text}", model="gemini-2.5-flash", client=emu.client(), stuck_after=STUCK,
                                      fallback="flex", **FAST)  # fmt: skip
        run.wait()
        cost = run.cost()
    assert cost.actual is not None and cost.actual > 0
    tokens = cost.tokens
    price = polars_gemini.load_prices().get("gemini-2.5-flash")
    assert price is not None
    flex = price.tier_rates("flex")
    assert flex is not None and flex.input == price.batch.input  # the Flex tier costs what batch does
    output = tokens["output"] + tokens["thinking"]  # thinking is billed as output
    expected = (tokens["input"] * flex.input + output * flex.output) / 1e6
    assert cost.actual == pytest.approx(expected, rel=1e-6)
    standard = (tokens["input"] * price.standard.input + output * price.standard.output) / 1e6
    assert cost.actual == pytest.approx(standard / 2, rel=1e-6)


def test_a_stuck_job_with_fallback_batch_goes_into_a_new_job() -> None:
    with Emulator(responder=echo, pending_seconds=10**9) as emu, warnings.catch_warnings():
        warnings.simplefilter("ignore", GeminiBatchWarning)
        run = _frame(3).gemini.submit("{text}", model="gemini-2.5-flash", client=emu.client(), stuck_after=STUCK,
                                      fallback="batch", **FAST)  # fmt: skip
        for _ in range(500):
            if len(emu.jobs) == 2:
                break
            run.advance()
            time.sleep(0.01)
        states = sorted(j["metadata"]["state"] for j in emu.jobs.values())
        assert states == ["BATCH_STATE_CANCELLED", "BATCH_STATE_PENDING"]  # the stuck one and its replacement
        assert run.round == 2 and not _generate_prompts(emu)
        run.close()


def test_an_expired_job_goes_through_flex_and_a_finished_one_is_kept() -> None:
    with Emulator(responder=echo, pending_seconds=0.0) as emu:
        emu.end_next_job("EXPIRED")  # the first job expires, the second finishes
        out = _frame(10).gemini.batch("{text}", model="gemini-2.5-flash", client=emu.client(), fallback="flex",
                                      max_requests_per_job=5, **FAST)  # fmt: skip
        assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(10)]
        flex = Counter(prompt for prompt, tier in _generate_prompts(emu) if tier == "flex")
        shards = [{f"row {i}" for i in range(5)}, {f"row {i}" for i in range(5, 10)}]  # jobs are created concurrently
        assert set(flex) in shards and set(flex.values()) == {1}  # the expired job's requests, each once


def test_a_resumed_run_keeps_its_fallback_and_webhook(tmp_path: Path) -> None:
    with Emulator(responder=echo, pending_seconds=10**9) as emu:
        run = _frame(3).gemini.submit("{text}", model="gemini-2.5-flash", client=emu.client(),
                                      checkpoint=tmp_path / "ck", stuck_after=5.0, fallback="flex",
                                      webhook="https://example.com/hook", **FAST)  # fmt: skip
        run.close()
        again = polars_gemini.resume(tmp_path / "ck", client=emu.client(), submit=False, **FAST)
        assert (again.options.stuck_after, again.options.fallback) == (5.0, "flex")
        assert again.options.webhook == ("https://example.com/hook",)
        again.close()


def test_each_job_carries_the_webhook_and_the_checkpoint_identity(tmp_path: Path) -> None:
    with Emulator(responder=echo) as emu:
        out = _frame(4).gemini.batch("{text}", model="gemini-2.5-flash", client=emu.client(), max_requests_per_job=2,
                                     checkpoint=tmp_path / "ck", webhook=["https://example.com/a", "http://127.0.0.1:9/b"],
                                     **FAST)  # fmt: skip
        assert out.get_column("response_error").null_count() == 4
        creates = [r.body_json for r in emu.requests if r.endpoint == "batches.create" and r.body_json]
    assert len(creates) == 2
    for body in creates:
        config = body["batch"]["webhookConfig"]
        assert config["uris"] == ["https://example.com/a", "http://127.0.0.1:9/b"]
        meta = config.get("userMetadata") or config["user_metadata"]  # the SDK sends the config's names as they are
        assert meta["polars_gemini_checkpoint"] == str((tmp_path / "ck").resolve())
        assert meta["polars_gemini_job"] == body["batch"]["displayName"]
        assert len(meta["polars_gemini_run_id"]) == 12


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"stuck_after": 0}, "stuck_after is a number of hours > 0"),
        ({"stuck_after": float("nan")}, "stuck_after is a number of hours > 0"),
        ({"stuck_after": "12"}, "stuck_after is a number of hours > 0"),
        ({"fallback": "sync"}, "fallback must be 'batch'"),
        ({"webhook": "http://example.com/hook"}, "not an https URL"),
        ({"webhook": "hook"}, "not an https URL"),
        ({"webhook": []}, "webhook must be an https URL"),
        ({"webhook": 3}, "webhook must be an https URL"),
        ({"webhook": "https://[::1"}, "not a valid URL"),
        ({"webhook": "https://example.com:99999/x"}, "not a valid URL"),
        ({"webhook": "https://example.com:abc/x"}, "not a valid URL"),
        ({"webhook": "https://exa mple.com/x"}, "spaces or control characters"),
        ({"webhook": "https://example.com/x\r\nHost: evil"}, "spaces or control characters"),
        ({"webhook": "https://user:p4ss@example.com/x"}, "user name or password"),
        ({"mode": "sync", "webhook": "https://example.com/x"}, "webhook= applies to batch runs"),
        ({"mode": "sync", "stuck_after": 1.0}, "stuck_after= applies to batch runs"),
    ],
)
def test_bad_options_are_refused_before_anything_is_sent(emu: Emulator, options: dict, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        _frame(2).gemini.submit("{text}", model="gemini-2.5-flash", client=emu.client(), **options, **FAST)
    assert not emu.requests


def test_a_stuck_shard_finishes_through_a_shedding_flex_tier_and_no_prompt_is_answered_twice(tmp_path: Path) -> None:
    """The issue's test: one shard stuck PENDING, the other finished in batch; the stuck one's requests are answered
    at the Flex tier (which sheds a third of the calls with 503, retried), and every prompt is billed exactly once."""
    retry = types.HttpRetryOptions(attempts=12, initial_delay=0.01, max_delay=0.05)
    with Emulator(responder=echo, flex_unavailable_rate=0.3, flex_seed=7) as emu:
        emu.slow_next_jobs(count=1)  # the first job created stays PENDING (until it would expire at 48 h)
        with pytest.warns(GeminiBatchWarning, match="cancelling it"):
            out = _frame(40).gemini.batch("{text}", model="gemini-2.5-flash", client=emu.client(), retry=retry,
                                          stuck_after=STUCK, fallback="flex", max_requests_per_job=20,
                                          max_concurrency=1, checkpoint=tmp_path / "ck", **FAST)  # fmt: skip
        answered = emu.answered()
        assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(40)]
        counts = Counter(a.prompt for a in answered)
        assert sorted(counts) == sorted(f"row {i}" for i in range(40)) and set(counts.values()) == {1}
        by_route = Counter((a.route, a.tier) for a in answered)
        assert by_route == {("batch", "batch"): 20, ("generate", "flex"): 20}
        shed = [r for r in emu.requests if r.endpoint == "models.generateContent"]
        assert len(shed) > 20  # some flex calls were shed and sent again
        states = sorted(j["metadata"]["state"] for j in emu.jobs.values())
        assert states == ["BATCH_STATE_CANCELLED", "BATCH_STATE_SUCCEEDED"]
        status = polars_gemini.resume(tmp_path / "ck", client=emu.client(), submit=False, **FAST)
        try:
            flex_jobs = [j for j in status.store.jobs if j.transport == "flex"]
            assert sum(j.requests for j in flex_jobs) == 20 and all(j.state == "SUCCEEDED" for j in flex_jobs)
            assert [j.stuck for j in status.store.jobs if j.transport != "flex"].count(True) == 1
        finally:
            status.close()


def kill_after_flex_answers(child: subprocess.Popen, emu: Emulator, answers: int) -> None:
    """SIGKILL the worker `child` once the emulator has answered `answers` Flex calls."""
    try:
        deadline = time.monotonic() + 120
        while sum(a.route == "generate" for a in emu.answered()) < answers and child.poll() is None:
            assert time.monotonic() < deadline, "the worker never reached its Flex calls"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL


def test_a_run_killed_during_its_flex_calls_resends_only_the_calls_under_way(tmp_path: Path) -> None:
    """Flex answers are journaled as each call returns: after a SIGKILL, resume sends only what the journal lacks."""
    worker = str(Path(__file__).with_name("flex_worker.py"))
    rows, concurrency = 150, 4
    with Emulator(responder=echo, flex_latency=0.01) as emu:
        emu.slow_next_jobs(count=1)
        kill_after_flex_answers(subprocess.Popen([sys.executable, worker, emu.url, str(tmp_path / "ck"), str(rows)]),
                                emu, 60)  # fmt: skip
        before = Counter(a.prompt for a in emu.answered() if a.route == "generate")
        (journal,) = (tmp_path / "ck" / "flex").glob("*.jsonl")
        with journal.open("ab") as handle:  # what a crash or a full disk can leave: a cut UTF-8 sequence, a stray byte
            handle.write(b'{"key":"\x01x"}\n{"key":"cut \xe2\x82')
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeminiBatchWarning)
            out = polars_gemini.resume(tmp_path / "ck", client=emu.client(), **FAST).result()
        assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(rows)]
        flex = Counter(a.prompt for a in emu.answered() if a.route == "generate")
        assert sorted(flex) == sorted(f"row {i}" for i in range(rows))
        twice = [p for p, n in flex.items() if n > 1]
        assert set(flex.values()) <= {1, 2} and len(twice) <= concurrency  # at most the calls in flight at the kill
        assert sum(before.values()) >= 60
        assert emu.calls("batches.create") == 1
        assert not list((tmp_path / "ck" / "flex").glob("*.jsonl"))  # the journal is gone once stored


def test_a_run_killed_during_its_flex_calls_on_s3_resends_only_the_last_half_second(
    tmp_path: Path, s3_emulator: S3Emulator
) -> None:
    """In object storage the journal cannot be appended to: it is published whole every half second while it grows.
    A SIGKILL then loses at most that half second of answers, and the calls in flight."""
    place = make_place("s3", tmp_path, s3_emulator)
    worker = str(Path(__file__).with_name("flex_worker.py"))
    rows, concurrency, latency = 150, 4, 0.1  # at most 4 answers per 0.1 s: 40 a second
    with Emulator(responder=echo, flex_latency=latency) as emu:
        emu.slow_next_jobs(count=1)
        env = {**os.environ, **place.env, "POLARS_GEMINI_LEASE_SECONDS": "3"}
        kill_after_flex_answers(subprocess.Popen([sys.executable, worker, emu.url, place.checkpoint, str(rows)],
                                                 env=env), emu, 60)  # fmt: skip
        assert any(name.startswith("objects/flex/") for name in place.stored())  # published while it ran
        before = sum(a.route == "generate" for a in emu.answered())
        time.sleep(3.2)  # the killed worker's lease runs out
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeminiBatchWarning)
            out = polars_gemini.resume(place.checkpoint, client=emu.client(), storage_options=place.storage_options,
                                       **FAST).result()  # fmt: skip
        assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(rows)]
        flex = Counter(a.prompt for a in emu.answered() if a.route == "generate")
        assert sorted(flex) == sorted(f"row {i}" for i in range(rows))
        twice = [p for p, n in flex.items() if n > 1]
        window = int(40 * (0.5 + 0.3))  # a flush period plus a publication's round trips, at 40 answers a second
        assert set(flex.values()) <= {1, 2} and len(twice) <= concurrency + window, (len(twice), before)
        assert emu.calls("batches.create") == 1
        assert not any(name.startswith("objects/flex/") for name in place.stored())  # gone once stored


def test_a_slow_flex_call_is_not_cut_short_by_the_clients_timeout() -> None:
    """Flex may take minutes: a client timeout shorter than its latency must not make the run send (and pay) twice."""
    with Emulator(responder=echo, flex_latency=1.0) as emu, warnings.catch_warnings():
        warnings.simplefilter("ignore", GeminiBatchWarning)
        emu.slow_next_jobs(count=1)
        client = emu.client(timeout=300)  # 0.3 s, shorter than each Flex reply
        out = _frame(3).gemini.batch("{text}", model="gemini-2.5-flash", client=client, stuck_after=STUCK,
                                     fallback="flex", **FAST)  # fmt: skip
        assert out.get_column("response_error").null_count() == 3
        flex = Counter(a.prompt for a in emu.answered() if a.tier == "flex")
        assert flex == {"row 0": 1, "row 1": 1, "row 2": 1}
        assert emu.calls("models.generateContent") == 3


def test_a_crash_right_after_a_stuck_jobs_cancel_landed_still_sends_its_requests_again(tmp_path: Path) -> None:
    """The stuck mark is saved before the cancel goes out: a kill between the two must not leave the job looking
    cancelled by the user (whose requests are never sent again)."""
    worker = str(Path(__file__).with_name("flex_worker.py"))
    with Emulator(responder=echo) as emu:
        emu.slow_next_jobs(count=1)
        emu.delay_reply("batches.cancel", 30)  # the cancel is done at once, its reply comes late
        child = subprocess.Popen([sys.executable, worker, emu.url, str(tmp_path / "ck"), "6"])
        try:
            deadline = time.monotonic() + 120
            while emu.calls("batches.cancel") < 1 and child.poll() is None:
                assert time.monotonic() < deadline, "the worker never cancelled its stuck job"
                time.sleep(0.01)
            time.sleep(0.2)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait()
        assert [j["metadata"]["state"] for j in emu.jobs.values()] == ["BATCH_STATE_CANCELLED"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeminiBatchWarning)
            out = polars_gemini.resume(tmp_path / "ck", client=emu.client(), **FAST).result()
        assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(6)]
        assert Counter(a.prompt for a in emu.answered()) == {f"row {i}": 1 for i in range(6)}


def test_cancel_during_a_flex_round_sends_nothing_more() -> None:
    with Emulator(responder=echo, flex_latency=0.02) as emu, warnings.catch_warnings():
        warnings.simplefilter("ignore", GeminiBatchWarning)
        emu.slow_next_jobs(count=1)
        run = _frame(600).gemini.submit("{text}", model="gemini-2.5-flash", client=emu.client(), stuck_after=STUCK,
                                        fallback="flex", max_concurrency=2, **FAST)  # fmt: skip
        failure: list[BaseException] = []

        def wait() -> None:
            try:
                run.wait()
            except BaseException as exc:
                failure.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        deadline = time.monotonic() + 60
        while sum(a.route == "generate" for a in emu.answered()) < 20:
            assert time.monotonic() < deadline and waiter.is_alive(), failure
            time.sleep(0.005)
        run.cancel()
        at_cancel = sum(a.route == "generate" for a in emu.answered())
        waiter.join(60)
        assert not waiter.is_alive() and not failure
        sent = sum(a.route == "generate" for a in emu.answered())
        assert sent <= at_cancel + 2  # the calls in flight land; nothing after them
        out = run.result()
        errors = out.get_column("response_error")
        assert errors.is_null().sum() == sent and out.height == 600
        assert errors.drop_nulls().str.contains("cancelled").all()
        assert emu.calls("models.generateContent") == sent


def test_without_a_checkpoint_a_failed_flex_round_resends_none_of_its_answers() -> None:
    """A fatal error (401) in the middle of a Flex round raises; the same Run waited again sends only the rest."""
    with Emulator(responder=echo) as emu, warnings.catch_warnings():
        warnings.simplefilter("ignore", GeminiBatchWarning)
        emu.slow_next_jobs(count=1)
        run = _frame(8).gemini.submit("{text}", model="gemini-2.5-flash", client=emu.client(), stuck_after=STUCK,
                                      fallback="flex", max_concurrency=1, **FAST)  # fmt: skip
        emu.fail_http("models.generateContent", 401, on_call=5)
        with pytest.raises(polars_gemini.APIError):
            run.wait()
        out = run.result()
        assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(8)]
        assert Counter(a.prompt for a in emu.answered()) == {f"row {i}": 1 for i in range(8)}
