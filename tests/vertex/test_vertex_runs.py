"""What only a Vertex AI run has: staging in Cloud Storage, Vertex's own job states and limits, a create whose reply
is lost, and the options it refuses before anything is written or sent."""

from __future__ import annotations

import collections

import polars as pl
import pytest
from vertex_support import FAST, backend, echo

import polars_gemini
from polars_gemini import ConfigurationError
from polars_gemini.emulator import responses
from polars_gemini.emulator.gcs import GcsEmulator
from polars_gemini.run import lifecycle


def frame(n: int = 10) -> pl.DataFrame:
    return pl.DataFrame({"id": range(n), "text": [f"row {i}" for i in range(n)]})


def answers(n: int) -> list[str]:
    return [f"echo: row {i}" for i in range(n)]


def test_partially_succeeded_job_keeps_its_answers_and_retries_the_failed_rows(gcs: GcsEmulator) -> None:
    with backend("vertex", gcs) as b:
        b.emu.end_next_job("PARTIALLY_SUCCEEDED", failed_rows=3)
        out = polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client, **b.options, **FAST)
        states = [j["state"] for j in b.emu.jobs.values()]
        billed = collections.Counter(a.prompt for a in b.emu.answered())
    assert out.get_column("response").to_list() == answers(10)
    assert out.get_column("response_error").null_count() == 10
    assert sorted(states) == ["JOB_STATE_PARTIALLY_SUCCEEDED", "JOB_STATE_SUCCEEDED"]  # a retry round for the 3
    assert set(billed) == {f"row {i}" for i in range(10)} and max(billed.values()) == 1


def test_a_failed_row_that_cannot_succeed_is_not_retried(gcs: GcsEmulator) -> None:
    """A row failed with INVALID_ARGUMENT (its `status` names code 400) keeps its error; no retry round buys it."""
    invalid = responses.error(400, "Request contains an invalid argument.", "INVALID_ARGUMENT")
    with backend("vertex", gcs, responder=responses.when(lambda r: r.text in ("row 2", "row 7"), invalid, echo)) as b:
        out = polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client, **b.options, **FAST)
        creates = b.emu.calls("vertex.batches.create")
    errors = out.get_column("response_error").to_list()
    assert creates == 1 and [i for i, e in enumerate(errors) if e] == [2, 7]
    assert "400" in errors[2] and "invalid argument" in errors[2]


def test_a_job_queued_on_the_service_is_followed_not_created_again(gcs: GcsEmulator) -> None:
    with backend("vertex", gcs, pending_seconds=0.05) as b:
        b.emu.settings.vertex_queued_seconds = 0.3
        run = polars_gemini.submit(frame(), "{text}", model="gemini-2.5-flash", client=b.client, **b.options, **FAST)
        seen = set()
        while not run.done:
            run.advance()
            seen |= {state for _, state in run.status().jobs}
        assert "QUEUED" in seen
        assert b.emu.calls("vertex.batches.create") == 1
        assert run.result().get_column("response").to_list() == answers(10)


def test_jobs_are_cut_at_vertex_limits(gcs: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "VERTEX_MAX_REQUESTS", 4)  # 200,000 in truth: the emulator refuses more than 4
    with backend("vertex", gcs) as b:
        b.emu.settings.vertex_request_limit = 4
        out = polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client, **b.options, **FAST)
        assert b.emu.calls("vertex.batches.create") == 3
    assert out.get_column("response").to_list() == answers(10)


def test_a_create_whose_reply_is_lost_is_looked_up_not_sent_again(gcs: GcsEmulator) -> None:
    with backend("vertex", gcs) as b:
        b.emu.inject("vertex.batches.create", "timeout", timeout_seconds=1.5)
        client = b.emu.vertex_client(timeout=300)
        out = polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=client, **b.options, **FAST)
        assert len(b.emu.jobs) == 1
    assert out.get_column("response").to_list() == answers(10)


def test_keep_files_keeps_the_staged_requests_and_predictions(gcs: GcsEmulator) -> None:
    with backend("vertex", gcs) as b:
        polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client, keep_files=True,
                            **b.options, **FAST)  # fmt: skip
        names = b.objects("runs/")
    assert any(n.endswith("/input.jsonl") for n in names)
    assert any("/predictions/" in n and n.endswith(".jsonl") for n in names)


def test_staging_and_the_bucket_are_checked_before_anything_is_sent(gcs: GcsEmulator) -> None:
    with backend("vertex", gcs) as b:
        opts = dict(b.options)
        del opts["staging"]
        with pytest.raises(ConfigurationError, match="staging='gs://bucket/prefix'"):
            polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client, **opts, **FAST)
        for bad in ("s3://bucket/x", "gs://", "gs://UPPER/x", "gs://b/a//b"):
            with pytest.raises(ConfigurationError, match="staging"):
                polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client, staging=bad,
                                    storage_client=opts["storage_client"], **FAST)  # fmt: skip
        with pytest.raises(ConfigurationError, match="does not exist"):
            polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client,
                                staging="gs://no-such-bucket-here/x", storage_client=opts["storage_client"], **FAST)
        with pytest.raises(ConfigurationError, match="webhook"):
            polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client,
                                webhook="https://example.com/hook", **b.options, **FAST)  # fmt: skip
        with pytest.raises(ConfigurationError, match="flex"):
            polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client, fallback="flex",
                                **b.options, **FAST)  # fmt: skip
        assert b.emu.calls("vertex.batches.create") == 0 and b.objects() == []


def test_staging_with_a_developer_api_client_is_refused(gcs: GcsEmulator) -> None:
    with backend("developer") as b:
        with pytest.raises(ConfigurationError, match="Vertex AI"):
            polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=b.client,
                                staging="gs://bucket/x", **FAST)  # fmt: skip
        assert b.emu.calls("batches.create") == 0


def test_sync_mode_on_vertex_needs_no_staging(gcs: GcsEmulator) -> None:
    with backend("vertex", gcs) as b:
        out = polars_gemini.batch(frame(4), "{text}", model="gemini-2.5-flash", client=b.client, mode="sync",
                                  progress=False)  # fmt: skip
        assert b.emu.calls("vertex.models.generateContent") == 4
    assert out.get_column("response").to_list() == answers(4)


def test_a_streamed_vertex_run_sinks_every_row(gcs: GcsEmulator, tmp_path) -> None:
    """A LazyFrame planned in bounded memory: its request files are the jobs' staged inputs, results stay on disk."""
    lf = frame(30).lazy()
    with backend("vertex", gcs, shuffle_results=True) as b:
        b.emu.settings.vertex_echo_fields = False  # and joined on the echoed request
        report = polars_gemini.sink_parquet(lf, tmp_path / "out.parquet", "{text}", model="gemini-2.5-flash",
                                            client=b.client, memory_budget=50_000_000, max_requests_per_job=12,
                                            checkpoint=tmp_path / "ckpt", **b.options, **FAST)  # fmt: skip
        assert b.emu.calls("vertex.batches.create") == 3 and b.objects() == []
    out = pl.read_parquet(tmp_path / "out.parquet")
    assert report.rows == 30 and report.failed == 0
    assert out.get_column("response").to_list() == answers(30)


def test_cancel_stops_the_vertex_jobs(gcs: GcsEmulator) -> None:
    with backend("vertex", gcs, pending_seconds=30) as b:
        run = polars_gemini.submit(frame(), "{text}", model="gemini-2.5-flash", client=b.client, **b.options, **FAST)
        run.cancel()
        out = run.result(timeout=30)
        assert [j["state"] for j in b.emu.jobs.values()] == ["JOB_STATE_CANCELLED"]
        assert b.objects() == []
    assert out.get_column("response").null_count() == 10
    assert all("CANCELLED" in e for e in out.get_column("response_error"))


@pytest.mark.parametrize("endpoint", ["vertex.batches.create", "vertex.batches.get", "vertex.batches.list"])
@pytest.mark.parametrize("fault", ["429", "500", "503", "timeout"])
def test_vertex_calls_survive_faults_without_paying_twice(gcs: GcsEmulator, endpoint: str, fault: str) -> None:
    """Every idempotent call retried; a create refused (429) waits for room, a create whose outcome is unknown
    (5xx, timeout) is looked up by name before it is ever sent again."""
    with backend("vertex", gcs) as b:
        b.emu.inject(endpoint, fault, times=2, timeout_seconds=1.0)
        client = b.emu.vertex_client(timeout=300)
        out = polars_gemini.batch(frame(), "{text}", model="gemini-2.5-flash", client=client, **b.options, **FAST)
        assert len(b.emu.jobs) == 1, b.display_names()
    assert out.get_column("response").to_list() == answers(10)


def test_the_storage_client_defaults_to_the_genai_clients_project_and_credentials(
    gcs: GcsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)  # where google-cloud-storage's own default client goes
    with backend("vertex", gcs) as b:
        out = polars_gemini.batch(frame(4), "{text}", model="gemini-2.5-flash", client=b.client,
                                  staging=b.options["staging"], **FAST)  # fmt: skip
        assert b.emu.calls("vertex.batches.create") == 1
        assert not any(n.endswith("/input.jsonl") for n in b.objects())  # written and deleted through that client
    assert out.get_column("response").to_list() == answers(4)
