"""`sink_parquet`: a run written to Parquet chunk by chunk holds exactly what `batch` returns (columns, dtypes, every
row once, in order), whatever the results did on the way: null rows, repeated prompts, failed requests, several
shards, shuffled results files, retry rounds, a crash and a resume."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import polars_gemini
from polars_gemini import ConfigurationError
from polars_gemini.emulator import Emulator, ResponderRequest
from polars_gemini.prepare.plan import Limits, make_plan
from polars_gemini.prepare.requests import build_spec
from testing_support import FAST, echo

MODEL = "gemini-2.0-flash"
SCHEMA = {"label": pl.Enum(["pos", "neg", "neutral"]), "score": pl.Float64, "tags": pl.List(pl.String)}
WORKER = str(Path(__file__).parents[1] / "checkpoint" / "crash_worker.py")


def reviews(rows: int) -> pl.DataFrame:
    """Rows with repeated texts (every 7th repeats an earlier one) and null texts (every 13th)."""
    return pl.DataFrame({"id": range(rows)}).with_columns(
        pl.when(pl.col("id") % 13 == 5).then(None)
        .when(pl.col("id") % 7 == 3).then(pl.format("r{}", pl.col("id") // 50))
        .otherwise(pl.format("r{}", pl.col("id"))).alias("text"),
        (pl.col("id") % 5).cast(pl.Int8).alias("stars"),
    )  # fmt: skip


def keys_of(frame: pl.DataFrame, template: str, schema: Any = None) -> pl.Series:
    plan = make_plan(frame, template, build_spec(MODEL, schema=schema), Limits())
    return plan.rows.get_column("key")


def test_text_sink_equals_batch_with_nulls_repeats_failures_shards_and_shuffled_results(tmp_path: Path) -> None:
    df = reviews(600)
    keys = keys_of(df, "Say {text}")
    with Emulator(responder=echo, shuffle_results=True) as emu:
        emu.fail_keys({keys[1]: (3, "this row cannot be answered"), keys[2]: (3, "nor this one")})
        opts: dict[str, Any] = {"model": MODEL, "client": emu.client(), "max_requests_per_job": 60, "usage": True,
                                "inline_limit_bytes": 1, "reuse_jobs": False, **FAST}  # fmt: skip
        expected = df.gemini.batch("Say {text}", **opts)
        report = df.lazy().gemini.sink_parquet(tmp_path / "out.parquet", "Say {text}", memory_budget=200_000, **opts)
    got = pl.read_parquet(tmp_path / "out.parquet")
    assert_frame_equal(got, expected)  # dtypes, order, values
    assert report.path == tmp_path / "out.parquet" and report.rows == 600
    failed = int(expected.get_column("response_error").is_not_null().sum())
    asked_for_failures = df.get_column("text").is_in(["r1", "r2"]).sum()  # the two failed prompts and their repeats
    assert report.failed == failed and failed == asked_for_failures + df.get_column("text").null_count()
    assert "this row cannot be answered" in got.get_column("response_error")[1]
    assert report.cost.tokens["input"] > 0 and "600 rows" in repr(report)


def test_schema_sink_equals_batch_through_the_functional_api(tmp_path: Path) -> None:
    df = reviews(300)
    with Emulator(shuffle_results=True) as emu:  # the default responder: JSON that fits the schema
        opts: dict[str, Any] = {"model": MODEL, "schema": SCHEMA, "client": emu.client(), "reuse_jobs": False,
                                "max_requests_per_job": 50, **FAST}  # fmt: skip
        expected = df.gemini.batch("Rate {text}", **opts)
        report = polars_gemini.sink_parquet(df, tmp_path / "typed.parquet", "Rate {text}", **opts)
    got = pl.read_parquet(report.path)
    assert_frame_equal(got, expected)
    assert got.schema["label"] == SCHEMA["label"] and got.schema["tags"] == pl.List(pl.String)
    assert got.get_column("label").drop_nulls().len() > 200  # real answers, not a frame of nulls


def test_retry_rounds_keep_the_answer_that_stands(tmp_path: Path) -> None:
    """A request that failed (retryable) in round 1 and was answered in round 2 shows the answer, as in `batch`."""
    df = reviews(120)
    seen: dict[str, int] = {}

    def flaky(request: ResponderRequest) -> dict[str, Any]:
        seen[request.text] = seen.get(request.text, 0) + 1
        if request.text.endswith("7") and seen[request.text] == 1:
            from polars_gemini.emulator import EmulatedError

            raise EmulatedError(503, "overloaded", "UNAVAILABLE")
        return echo(request)

    with Emulator(responder=flaky) as emu:
        opts: dict[str, Any] = {"model": MODEL, "client": emu.client(), "max_requests_per_job": 40, **FAST}
        report = polars_gemini.sink_parquet(df.lazy(), tmp_path / "out.parquet", "Say {text}",
                                            checkpoint=tmp_path / "ck", **opts)  # fmt: skip
        assert emu.calls("batches.create") > 3  # a retry round ran
        run = polars_gemini.resume(tmp_path / "ck", client=emu.client(), **FAST)
        expected, cost = run.result(), run.cost()
        run.close()
    got = pl.read_parquet(report.path)
    assert_frame_equal(got, expected)
    # The lean store's cost, summed job by job, is the in-memory store's, every attempt included.
    assert report.cost.actual == pytest.approx(cost.actual) and report.cost.tokens == cost.tokens
    assert cost.actual is not None and cost.tokens["input"] > 0
    answered = got.filter(pl.col("text").str.ends_with("7"))
    assert answered.height and answered.get_column("response_error").null_count() == answered.height


def test_sink_of_a_run_resumed_after_a_crash(tmp_path: Path) -> None:
    """SIGKILLed while downloading results, the run is resumed (`stream=True`) and sunk: every row once, each job
    created once, and the same file a collected resume gives."""
    with Emulator(responder=echo, latency=0.3) as emu:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        cmd = [sys.executable, WORKER, "sink", emu.url, str(tmp_path / "ck"), str(tmp_path / "out.parquet"), "40"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while emu.calls("files.download") == 0:
            assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert not (tmp_path / "out.parquet").exists()
        emu.settings.latency = 0.0
        run = polars_gemini.resume(tmp_path / "ck", client=emu.client(), stream=True, **FAST)
        report = run.sink_parquet(tmp_path / "out.parquet")
        run.close()
        again = polars_gemini.resume(tmp_path / "ck", client=emu.client(), **FAST)
        expected = again.result()
        again.close()
        created = [job["metadata"]["displayName"] for job in emu.jobs.values()]
    got = pl.read_parquet(report.path)
    assert_frame_equal(got, expected)
    assert got.get_column("id").to_list() == list(range(40))
    assert got.get_column("response").to_list() == [f"echo: Summarize: {t}" for t in got.get_column("text")]
    assert len(created) == len(set(created)) == 3


def test_a_million_rows_sunk_equal_the_collected_run(tmp_path: Path) -> None:
    """1M rows through the emulator, 1k of them null, the others asking 40k distinct prompts in scattered order (so
    that the emulator's own per-request work stays small next to the library's per-row work): the sink's file
    equals `run.result()`."""
    rows = 1_000_000
    i = pl.int_range(rows, dtype=pl.Int64)
    df = pl.select(i.alias("id"), pl.when(i % 1000 == 3).then(None).otherwise((i * 7_919) % 40_000).cast(pl.String)
                   .alias("t"))  # fmt: skip

    def cheap(request: ResponderRequest) -> dict[str, Any]:  # the prompt echoed, with none of the drafting work
        text = request.request["contents"][0]["parts"][0]["text"]
        return {"candidates": [{"content": {"parts": [{"text": "e" + text}]}, "finishReason": "STOP"}],
                "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 2, "totalTokenCount": 4}}  # fmt: skip

    with Emulator(responder=cheap) as emu:
        report = polars_gemini.sink_parquet(df.lazy(), tmp_path / "out.parquet", "{t}", model=MODEL,
                                            client=emu.client(), checkpoint=tmp_path / "ck", **FAST)  # fmt: skip
        run = polars_gemini.resume(tmp_path / "ck", client=emu.client(), **FAST)  # every job collected: no call
        expected = run.result()
        run.close()
    got = pl.read_parquet(report.path)
    assert report.rows == rows and report.failed == 1_000
    assert_frame_equal(got, expected)
    answered = got.get_column("response").drop_nulls().str.slice(1)
    assert answered.equals(got.get_column("t").drop_nulls(), check_names=False)


def test_signatures_are_batch_s_with_a_path() -> None:
    """Full signatures (no **kwargs): the functional and both namespace forms take `batch`'s options and `path`."""
    batch = set(inspect.signature(polars_gemini.batch).parameters)
    for fn in (polars_gemini.sink_parquet, pl.LazyFrame().gemini.sink_parquet, pl.DataFrame().gemini.sink_parquet):
        params = inspect.signature(fn).parameters
        assert all(p.kind is not inspect.Parameter.VAR_KEYWORD for p in params.values())
        assert set(params) - {"path"} == batch - ({"frame"} if "frame" not in params else set())


def test_media_refuses_a_memory_budget_for_the_sink_too(tmp_path: Path) -> None:
    df = pl.DataFrame({"photo": [str(tmp_path / "a.png")]})
    with pytest.raises(polars_gemini.ConfigurationError, match="media= and memory_budget= cannot be combined"):
        polars_gemini.sink_parquet(df, tmp_path / "o.parquet", "Describe", model=MODEL, media="photo",
                                   memory_budget=1_000_000, client=None)  # fmt: skip
    assert not (tmp_path / "o.parquet").exists()


def test_a_bad_memory_budget_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    with pytest.raises(polars_gemini.ConfigurationError, match="memory_budget"):
        polars_gemini.sink_parquet(reviews(3), tmp_path / "o.parquet", "{text}", model=MODEL, memory_budget=-5)


def test_an_embedding_run_is_sunk_whole(tmp_path: Path) -> None:
    df = pl.DataFrame({"t": ["a red apple", "a green pear", None]})
    with Emulator() as emu:
        run = polars_gemini.submit_embed(df, "{t}", client=emu.client(), output_dimensionality=8, **FAST)
        report = run.sink_parquet(tmp_path / "v.parquet")
        expected = run.result()
    assert_frame_equal(pl.read_parquet(report.path), expected)
    assert report.rows == 3 and report.failed == 1


def test_a_checkpointed_embedding_run_resumed_with_stream_is_sunk_whole(tmp_path: Path) -> None:
    df = pl.DataFrame({"t": ["a red apple", "a green pear", None, "a red apple"]})
    with Emulator() as emu:
        expected = polars_gemini.embed(df, "{t}", client=emu.client(), output_dimensionality=8,
                                       checkpoint=tmp_path / "ck", inline_limit_bytes=1, **FAST)  # fmt: skip
        run = polars_gemini.resume(tmp_path / "ck", client=emu.client(), stream=True, **FAST)
        report = run.sink_parquet(tmp_path / "v.parquet")
        run.close()
    assert_frame_equal(pl.read_parquet(report.path), expected)
    assert report.rows == 4 and report.failed == 1


@pytest.mark.parametrize("kind", ["directory", "under a file", "not a path"])
def test_a_path_that_cannot_be_written_is_refused_before_anything_is_sent(
    emu: Emulator, tmp_path: Path, kind: str
) -> None:
    (tmp_path / "file.txt").write_text("x")
    path: object = {"directory": tmp_path, "under a file": tmp_path / "file.txt" / "out.parquet", "not a path": 3}[kind]
    with pytest.raises(ConfigurationError, match="path"):
        polars_gemini.sink_parquet(pl.DataFrame({"t": ["a"]}).lazy(), path, "{t}",  # type: ignore[arg-type]
                                   model="gemini-2.0-flash", client=emu.client(), progress=False)  # fmt: skip
    assert not emu.requests
