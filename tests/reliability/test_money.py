"""Issue 9, part A: nothing paid twice, nothing paid for lost. Through the real SDK against the emulator."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import polars as pl
import pytest
from reliability_support import FAST, FILES, RETRY, assert_complete, created, frame

import polars_gemini
from polars_gemini import APIError, CheckpointLockedError, GeminiBatchWarning
from polars_gemini.emulator import Emulator


@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("transport", ["inline", "file"])
def test_create_whose_reply_is_lost_is_looked_up_not_resent(
    emu: Emulator, tmp_path: Path, checkpoint: bool, transport: str
) -> None:
    """A1: the create lands but its reply comes after the client's timeout: one job, found by its name."""
    emu.delay_reply("batches.create", 1.0)
    client = emu.client(timeout=300)
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=client,
                               checkpoint=tmp_path / "c" if checkpoint else None,
                               **(FILES if transport == "file" else {}), **FAST)  # fmt: skip
    assert_complete(out, 6)
    assert created(emu) == 1
    assert emu.calls("batches.create") == 1  # never re-sent: the job was found by `list`
    assert emu.calls("batches.list") >= 1


def test_create_5xx_is_looked_up_then_sent_again_only_if_absent(emu: Emulator) -> None:
    """A1: a 503 on create (nothing created) is followed by a lookup, then one more create: one job in all."""
    emu.fail_http("batches.create", 503)
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert_complete(out, 6)
    assert (created(emu), emu.calls("batches.create")) == (1, 2)


def test_sdk_retry_options_never_resend_a_create(emu: Emulator) -> None:
    """A1: even a client whose own retry options would re-send a timed-out POST creates one job."""
    from google.genai import types

    emu.delay_reply("batches.create", 1.0)
    client = emu.client(timeout=300, retry_options=types.HttpRetryOptions(attempts=5, initial_delay=0.01))
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=client, **FAST)
    assert_complete(out, 6)
    assert created(emu) == 1


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_download_errors_are_retried(emu: Emulator, status: int) -> None:
    """A2: the SDK's download ignores retry options; the library retries it."""
    emu.fail_http("files.download", status, times=2)
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FILES, **FAST)
    assert_complete(out, 6)
    assert emu.calls("files.download") == 3
    assert created(emu) == 1


def test_download_error_that_persists_names_the_job_and_rerun_pays_nothing(emu: Emulator) -> None:
    """A2 + A3: a download failing past every retry names the job; calling again re-attaches, buys nothing."""
    emu.fail_http("files.download", 503, times=RETRY.attempts or 1)
    with pytest.raises(APIError, match=r"Downloading the results of batches/\S+") as info:
        frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FILES, **FAST)
    assert info.value.code == 503
    with pytest.warns(GeminiBatchWarning, match="Re-attached to 1 batch job"):
        out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FILES, **FAST)
    assert_complete(out, 6)
    assert created(emu) == 1


def test_same_work_without_checkpoint_reattaches_and_opt_out_pays_again(emu: Emulator) -> None:
    """A3: jobs of the same work still on the service are re-attached; reuse_jobs=False submits anew."""
    first = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    with pytest.warns(GeminiBatchWarning, match="reuse_jobs=False"):
        again = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert again.equals(first) and created(emu) == 1
    anew = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), reuse_jobs=False, **FAST)
    assert anew.equals(first) and created(emu) == 2
    other = frame(7).gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)  # other work
    assert_complete(other, 7)
    assert created(emu) == 3


@pytest.mark.parametrize("lost", ["results", "jobs.parquet", "both"])
def test_deleting_files_as_the_corruption_message_advises_never_recreates(
    emu: Emulator, tmp_path: Path, lost: str
) -> None:
    """A4: after deleting results/<job>.parquet or jobs.parquet, the job is re-attached and re-downloaded."""
    ckpt = tmp_path / "c"
    frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt, **FILES, **FAST)
    if lost in ("results", "both"):
        for path in (ckpt / "results").glob("*.parquet"):
            path.unlink()
    if lost in ("jobs.parquet", "both"):
        (ckpt / "jobs.parquet").unlink()
    downloads = emu.calls("files.download")
    with pytest.warns(GeminiBatchWarning) if lost != "results" else contextlib.nullcontext():
        out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt,
                                   **FILES, **FAST)  # fmt: skip
    assert_complete(out, 6)
    assert created(emu) == 1
    assert emu.calls("files.download") == downloads + 1


def test_two_threads_on_one_checkpoint_create_one_job(tmp_path: Path) -> None:
    """A5: two threads calling batch() on one checkpoint: one job; the other thread is refused or reuses it."""
    from reliability_support import echo

    with Emulator(responder=echo, running_seconds=0.5) as emu:
        barrier, outcomes = threading.Barrier(2), []

        def call() -> None:
            barrier.wait()
            try:
                outcomes.append(frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(),
                                                     checkpoint=tmp_path / "c", **FAST))  # fmt: skip
            except CheckpointLockedError as exc:
                outcomes.append(exc)

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert created(emu) == 1
    frames = [o for o in outcomes if isinstance(o, pl.DataFrame)]
    refused = [o for o in outcomes if isinstance(o, CheckpointLockedError)]
    assert len(frames) >= 1 and len(frames) + len(refused) == 2
    assert all("another thread" in str(e) for e in refused)
    assert_complete(frames[0], 6)


def test_failed_submit_releases_the_checkpoint(emu: Emulator, tmp_path: Path) -> None:
    """A5: a submit that fails (create refused) keeps no lock: another process can resume at once."""
    emu.fail_http("batches.create", 400, message="Invalid model configuration.")
    ckpt = tmp_path / "c"
    with pytest.raises(APIError, match="Invalid model configuration"):
        frame().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt, **FAST)
    code = f"from pathlib import Path; from polars_gemini.checkpoint.store import Store; Store(Path({str(ckpt)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    run = polars_gemini.resume(ckpt, client=emu.client(), **FAST)
    assert_complete(run.result(), 6)
    run.close()


def test_superseded_run_refuses_to_work(emu: Emulator, tmp_path: Path) -> None:
    """A5: a newer run on the directory in the same process (a re-run cell) takes it over; the old one stops."""
    ckpt = tmp_path / "c"
    old = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt, **FAST)
    new = polars_gemini.resume(ckpt, client=emu.client(), **FAST)
    with pytest.raises(CheckpointLockedError, match="newer run"):
        old.wait()
    assert_complete(new.result(), 6)
    new.close()
    assert created(emu) == 1


def test_quota_refusals_queue_jobs_until_running_ones_finish(tmp_path: Path) -> None:
    """A6: the service allows one active job; three are needed: 429s queue them, all rows come back."""
    from reliability_support import echo

    with Emulator(responder=echo, running_seconds=0.3, max_active_jobs=1) as emu:
        run = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), max_requests_per_job=2,
                                    checkpoint=tmp_path / "c", **FAST)  # fmt: skip
        status = run.status()
        assert status.queued == 2, status
        assert "QUEUED" in repr(status)
        out = run.result()
        run.close()
        assert_complete(out, 6)
        assert created(emu) == 3
        refused = emu.calls("batches.create") - 3
        assert refused >= 2  # the service said 429 and nothing was created for those


def test_max_active_jobs_stays_under_the_limit_from_the_start() -> None:
    """A6: max_active_jobs=1 never provokes a refusal."""
    from reliability_support import echo

    with Emulator(responder=echo, running_seconds=0.2, max_active_jobs=1) as emu:
        out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), max_requests_per_job=2,
                                   max_active_jobs=1, **FAST)  # fmt: skip
        assert_complete(out, 6)
        assert emu.calls("batches.create") == created(emu) == 3


def test_enqueued_token_budget_splits_and_paces_jobs() -> None:
    """A6: max_enqueued_tokens= (a Tier 1 user's quota) splits the work so each job fits, and paces them."""
    from reliability_support import echo

    texts = pl.DataFrame({"id": range(40), "text": [f"item {i} " + "word " * 40 for i in range(40)]})
    with Emulator(responder=echo, running_seconds=0.2, enqueued_token_limit=600) as emu:
        out = texts.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), max_enqueued_tokens=500,
                                 **FILES, **FAST)  # fmt: skip
        assert out.get_column("response_error").null_count() == 40
        assert created(emu) > 1
        assert emu.calls("batches.create") == created(emu)  # paced: never refused


def test_quota_refused_with_nothing_running_gives_up_with_a_clear_error(tmp_path: Path) -> None:
    """A6: a job larger than the whole quota can never run: an APIError that says what to do, nothing lost."""
    from reliability_support import echo

    texts = pl.DataFrame({"id": range(20), "text": [f"item {i} " + "word " * 40 for i in range(20)]})
    with Emulator(responder=echo, enqueued_token_limit=50) as emu:
        with pytest.raises(APIError, match="max_enqueued_tokens") as info:
            texts.gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FILES, **FAST)
        assert info.value.code == 429
        assert created(emu) == 0


def test_lost_create_reply_whose_lookup_is_refused_is_never_recreated(emu: Emulator) -> None:
    """A1: the reply is lost and the look-up meets 429s too: the job stays 'creating', is found later, not re-made."""
    emu.inject("batches.create", "timeout", timeout_seconds=0.6)
    emu.fail_http("batches.list", 429, times=RETRY.attempts or 1)
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(timeout=250),
                               reuse_jobs=False, **FAST)  # fmt: skip
    assert_complete(out, 6)
    assert (created(emu), emu.calls("batches.create")) == (1, 1)


@pytest.mark.parametrize("lose_state", [False, True])
def test_rerun_after_a_retry_round_reuses_every_round(emu: Emulator, tmp_path: Path, lose_state: bool) -> None:
    """A3/A4: round 1 FAILED, round 2 answered everything: the same work again (no checkpoint, or one whose
    jobs.parquet and results were deleted) creates nothing, whatever round holds the answers."""
    emu.end_next_job("FAILED", code=13)
    ckpt = tmp_path / "c" if lose_state else None
    first = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt, **FAST)
    assert_complete(first, 6)
    assert created(emu) == 2
    if ckpt is not None:
        (ckpt / "jobs.parquet").unlink()
        shutil.rmtree(ckpt / "results")
    with pytest.warns(GeminiBatchWarning, match="Re-attached to 1 batch job"):
        again = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), checkpoint=ckpt,
                                     **FAST)  # fmt: skip
    assert again.equals(first)
    assert created(emu) == 2


def test_an_old_cancelled_job_of_the_same_name_is_not_taken_for_a_new_create(emu: Emulator) -> None:
    """A1: after a transient create failure, the look-up must not adopt an earlier, cancelled job of that name."""
    emu.settings.pending_seconds = 5
    run = frame().gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    run.cancel()
    assert run.result().get_column("response_error").str.contains("CANCELLED").all()
    emu.settings.pending_seconds = 0
    emu.fail_http("batches.create", 503)
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST)
    assert_complete(out, 6)
    assert created(emu) == 2


def test_cancel_survives_finished_jobs_and_drops_queued_ones(emu: Emulator) -> None:
    """run.cancel(): a job that already finished is no error, and queued jobs are never created afterwards."""
    run = frame(30).gemini.submit("{text}", model="gemini-2.0-flash", client=emu.client(), max_requests_per_job=10,
                                  max_active_jobs=1, **FAST)  # fmt: skip
    assert run.status().queued == 2
    run.cancel()  # the first job has already succeeded on the service: nothing to cancel there
    out = run.result()
    assert created(emu) == 1
    assert out.get_column("response_error").null_count() == 10
    assert out.get_column("response_error").drop_nulls().str.contains("cancelled before its job was created").all()


def test_two_threads_with_the_same_work_and_no_checkpoint_create_one_job() -> None:
    """A5: without a checkpoint, two threads submitting the same work at once take turns: one job, both answered."""
    from reliability_support import echo

    with Emulator(responder=echo, running_seconds=0.3) as emu:
        barrier, outs = threading.Barrier(2), []

        def call() -> None:
            barrier.wait()
            outs.append(frame().gemini.batch("{text}", model="gemini-2.0-flash", client=emu.client(), **FAST))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeminiBatchWarning)  # the second thread re-attaches, and says so
            threads = [threading.Thread(target=call) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
        assert created(emu) == 1
    assert len(outs) == 2
    for out in outs:
        assert_complete(out, 6)
