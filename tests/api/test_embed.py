"""`embed`, `submit_embed`, `estimate_embed`: embeddings through the real SDK against the emulator, every row once."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import polars as pl
import pytest

import polars_gemini
from polars_gemini import BudgetExceededError, ColumnClashError, ConfigurationError, GeminiBatchWarning, ModelError
from polars_gemini.emulator import Emulator, responses
from testing_support import FAST

TEXTS = ["a red apple", "a green apple", "a red apple", None, "the stock market fell", "A red apple!"]


def frame() -> pl.DataFrame:
    return pl.DataFrame({"id": range(len(TEXTS)), "text": TEXTS})


def normalized(values: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def expected(text: str, dims: int | None = None, task_type: str | None = None, normalize: bool = True) -> list[float]:
    values = responses.embedding(text, task_type=task_type, dimensions=dims)
    return normalized(values) if normalize else values


def assert_vectors(out: pl.DataFrame, texts: list[str | None], **kw: object) -> None:
    got = out.get_column("embedding").to_list()
    for text, vector in zip(texts, got, strict=True):
        if text is None:
            assert vector is None
        else:
            assert vector == pytest.approx(expected(text, **kw), abs=2e-6), text  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["inline", "file"])
def test_every_row_gets_its_own_vector_once_in_order(emu: Emulator, transport: str) -> None:
    limit = 0 if transport == "file" else None
    out = frame().gemini.embed(
        "text", client=emu.client(), output_dimensionality=64, inline_limit_bytes=limit, **FAST
    )  # fmt: skip
    assert out.columns == ["id", "text", "embedding", "embedding_error"]
    assert out.schema["embedding"] == pl.Array(pl.Float32, 64)
    assert out.get_column("id").to_list() == list(range(len(TEXTS)))
    assert_vectors(out, TEXTS, dims=64)
    errors = out.get_column("embedding_error").to_list()
    assert errors[3] is not None and "'text'" in errors[3] and all(e is None for i, e in enumerate(errors) if i != 3)
    # one request per distinct text, on the transport asked for
    assert len(emu.jobs) == 1
    assert emu.calls("batches.create_embeddings") == 1
    assert emu.calls("files.upload_start") == (1 if transport == "file" else 0)
    assert sum(1 for r in emu.requests if r.endpoint == "batches.create_embeddings") == 1


def test_inline_requests_carry_their_keys_and_shuffled_results_still_match(emu: Emulator) -> None:
    emu.corrupt_results("shuffled")
    out = frame().gemini.embed("text", client=emu.client(), output_dimensionality=16, **FAST)
    assert_vectors(out, TEXTS, dims=16)
    body = next(r for r in emu.requests if r.endpoint == "batches.create_embeddings").body_json
    inlined = body["batch"]["input_config"]["requests"]["requests"]
    assert len(inlined) == 4 and all(set(item["metadata"]) == {"key"} for item in inlined)
    assert all(item["request"]["output_dimensionality"] == 16 for item in inlined)


def test_shuffled_result_file_still_matches_by_key(emu: Emulator) -> None:
    emu.corrupt_results("shuffled")
    out = frame().gemini.embed("text", client=emu.client(), output_dimensionality=16, inline_limit_bytes=0, **FAST)
    assert_vectors(out, TEXTS, dims=16)


def test_full_size_default_and_normalization(emu: Emulator) -> None:
    client = emu.client()
    full = frame().gemini.embed("text", client=client, normalize=False, **FAST)
    assert full.schema["embedding"] == pl.Array(pl.Float32, 3072)
    assert_vectors(full, TEXTS, normalize=False)  # the service's own full-size vectors are unit length already
    short = frame().gemini.embed("text", client=client, output_dimensionality=768, normalize=False, **FAST)
    raw = short.get_column("embedding").to_list()[0]
    assert raw == pytest.approx(expected("a red apple", 768, normalize=False), abs=1e-7)
    assert abs(math.sqrt(sum(v * v for v in raw)) - 1.0) > 1e-3  # a prefix: not unit length on the wire
    with pytest.warns(GeminiBatchWarning, match="Re-attached"):  # normalizing is local: the same work, not re-bought
        unit = frame().gemini.embed("text", client=client, output_dimensionality=768, **FAST)
    assert emu.calls("batches.create_embeddings") == 2
    norms = unit.select(pl.col("embedding").pipe(lambda v: (v * v).arr.sum().sqrt())).to_series().drop_nulls()
    assert norms.to_list() == pytest.approx([1.0] * norms.len(), abs=1e-5)


def test_task_type_changes_the_vector_and_is_sent(emu: Emulator) -> None:
    out = frame().gemini.embed("text", client=emu.client(), task_type="retrieval_query", output_dimensionality=32,
                               **FAST)  # fmt: skip
    assert_vectors(out, TEXTS, dims=32, task_type="RETRIEVAL_QUERY")
    assert expected("a red apple", 32, "RETRIEVAL_QUERY") != expected("a red apple", 32)


def test_errors_per_row_leave_the_others(emu: Emulator) -> None:
    client = emu.client()
    run = frame().gemini.submit_embed("text", client=client, output_dimensionality=8, max_retries=0, **FAST)
    keys = dict(zip(run.plan.requests.get_column("prompt"), run.plan.requests.get_column("key"), strict=True))
    run.cancel()
    emu.fail_keys({keys["a green apple"]: (3, "this text cannot be embedded")})
    out = frame().gemini.embed("text", client=client, output_dimensionality=8, max_retries=0, reuse_jobs=False,
                               **FAST)  # fmt: skip
    errors = out.get_column("embedding_error").to_list()
    assert errors[1] is not None and "this text cannot be embedded" in errors[1]
    assert out.get_column("embedding").to_list()[1] is None
    assert_vectors(out.filter(pl.col("id") != 1), [t for i, t in enumerate(TEXTS) if i != 1], dims=8)


def test_missing_results_are_retried_in_rounds(emu: Emulator) -> None:
    emu.corrupt_results("dropped")  # the first job's first result is missing: sent again in a second round
    out = frame().gemini.embed("text", client=emu.client(), output_dimensionality=8, **FAST)
    assert out.get_column("embedding_error").null_count() == len(TEXTS) - 1
    assert_vectors(out, TEXTS, dims=8)
    sizes = sorted(int(j["metadata"]["batchStats"]["requestCount"]) for j in emu.jobs.values())
    assert sizes == [1, 4]


def test_a_job_whose_every_request_failed_reports_each(emu: Emulator) -> None:
    client = emu.client()
    df = pl.DataFrame({"text": ["one", "two"]})
    run = df.gemini.submit_embed("text", client=client, output_dimensionality=8, max_retries=0, **FAST)
    keys = run.plan.requests.get_column("key").to_list()
    run.cancel()
    emu.fail_keys({k: (3, f"bad {k}") for k in keys})
    out = df.gemini.embed("text", client=client, output_dimensionality=8, max_retries=0, reuse_jobs=False, **FAST)
    assert out.get_column("embedding").null_count() == 2
    assert [e.split(": ")[-1] for e in out.get_column("embedding_error")] == [f"bad {k}" for k in keys]


def test_sync_mode(emu: Emulator) -> None:
    out = frame().gemini.embed("text", client=emu.client(), mode="sync", output_dimensionality=24, **FAST)
    assert_vectors(out, TEXTS, dims=24)
    assert emu.calls("models.batchEmbedContents") == 1 and emu.calls("batches.create_embeddings") == 0


def test_sync_mode_splits_calls_at_the_api_limit(emu: Emulator) -> None:
    texts = [f"text number {i}" for i in range(250)]
    out = pl.DataFrame({"t": texts}).gemini.embed("t", client=emu.client(), mode="sync", output_dimensionality=4,
                                                   **FAST)  # fmt: skip
    assert emu.calls("models.batchEmbedContents") == 3
    assert_vectors(out.rename({"embedding": "embedding"}), texts, dims=4)


def test_empty_frame_needs_no_client() -> None:
    empty = pl.DataFrame({"text": []}, schema={"text": pl.String})
    out = empty.gemini.embed("text", output_dimensionality=12, **FAST)
    assert out.height == 0 and out.schema["embedding"] == pl.Array(pl.Float32, 12)


def test_lazy_frame_template_and_expression(emu: Emulator) -> None:
    lf = pl.LazyFrame({"title": ["Apples", "Cars"], "body": ["red and green", "fast and loud"]})
    out = lf.gemini.embed("{title}: {body}", client=emu.client(), output_dimensionality=8, **FAST)
    assert_vectors(out, ["Apples: red and green", "Cars: fast and loud"], dims=8)
    by_expr = polars_gemini.embed(lf, pl.col("body").str.to_uppercase(), client=emu.client(),
                                  output_dimensionality=8, **FAST)  # fmt: skip
    assert_vectors(by_expr, ["RED AND GREEN", "FAST AND LOUD"], dims=8)


def test_checkpoint_rerun_pays_only_for_new_rows(emu: Emulator, tmp_path: Path) -> None:
    client = emu.client()
    first = frame().gemini.embed("text", client=client, output_dimensionality=8, checkpoint=tmp_path / "c", **FAST)
    grown = pl.concat([frame(), pl.DataFrame({"id": [99], "text": ["a brand new text"]})])
    emu.clear_requests()
    second = grown.gemini.embed("text", client=client, output_dimensionality=8, checkpoint=tmp_path / "c", **FAST)
    assert second.head(len(TEXTS)).equals(first)
    assert_vectors(second, [*TEXTS, "a brand new text"], dims=8)
    body = next(r for r in emu.requests if r.endpoint == "batches.create_embeddings").body_json
    inlined = body["batch"]["input_config"]["requests"]["requests"]
    sent = [item["request"]["content"]["parts"][0]["text"] for item in inlined]
    assert sent == ["a brand new text"]


def test_resume_from_the_checkpoint_alone(emu: Emulator, tmp_path: Path) -> None:
    client = emu.client()
    run = frame().gemini.submit_embed("text", client=client, output_dimensionality=8, normalize=False,
                                      checkpoint=tmp_path / "c", **FAST)  # fmt: skip
    run.close()
    out = polars_gemini.resume(tmp_path / "c", client=client, progress=False, poll_interval=0.01).result()
    assert_vectors(out, TEXTS, dims=8, normalize=False)
    assert emu.calls("batches.create_embeddings") == 1


def test_lost_create_reply_is_looked_up_not_resent(emu: Emulator) -> None:
    emu.inject("batches.create_embeddings", "503")  # the reply is lost or refused: the job is looked up by name
    out = frame().gemini.embed("text", client=emu.client(), output_dimensionality=8, **FAST)
    assert_vectors(out, TEXTS, dims=8)
    assert len(emu.jobs) == 1


def test_usage_and_cost(emu: Emulator) -> None:
    run = frame().gemini.submit_embed("text", client=emu.client(), output_dimensionality=8, usage=True, **FAST)
    out = run.result()
    tokens = out.get_column("embedding_input_tokens")
    assert out.columns[-1] == "embedding_input_tokens" and tokens.null_count() == 1 and tokens.drop_nulls().min() > 0
    cost = run.cost()
    assert cost.tokens["input"] == int(out.unique("text").get_column("embedding_input_tokens").sum())
    assert cost.tokens["output"] == 0
    assert cost.actual == pytest.approx(cost.tokens["input"] * 0.075 / 1e6)


def test_estimate_embed_prices_input_only() -> None:
    est = frame().gemini.estimate_embed("text")
    assert est.requests == 4 and est.rows == len(TEXTS) and est.output_tokens == 0
    assert est.cost == pytest.approx(est.input_tokens * 0.075 / 1e6)
    assert est.cost_max == est.cost


def test_max_cost_refuses_before_anything_is_sent(emu: Emulator) -> None:
    with pytest.raises(BudgetExceededError):
        frame().gemini.embed("text", client=emu.client(), max_cost=0.0, **FAST)
    assert emu.requests == []


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"task_type": "SEARCH"}, ConfigurationError, "task_type must be one of"),
        ({"output_dimensionality": 0}, ConfigurationError, "output_dimensionality must be an integer 1 to 3072"),
        ({"output_dimensionality": 4096}, ConfigurationError, "1 to 3072"),
        ({"title": "Doc"}, ConfigurationError, "RETRIEVAL_DOCUMENT"),
        ({"model": "gemini-2.5-flash"}, ModelError, "generation model"),
        ({"model": "gemini-embeding-001"}, ModelError, "Known models: gemini-embedding-001"),
        ({"output": "text"}, ColumnClashError, "text"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(
    emu: Emulator, kwargs: dict[str, object], error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        frame().gemini.embed("text", client=emu.client(), **kwargs, **FAST)  # type: ignore[arg-type]
    assert emu.requests == []


def test_an_embedding_model_in_batch_is_refused(emu: Emulator) -> None:
    with pytest.raises(ModelError, match="use embed"):
        frame().gemini.batch("{text}", model="gemini-embedding-001", client=emu.client(), **FAST)


def test_no_experimental_warning_reaches_the_user(emu: Emulator) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame().gemini.embed("text", client=emu.client(), output_dimensionality=8, inline_limit_bytes=0, **FAST)


def test_texts_over_the_input_limit_are_flagged_before_sending(emu: Emulator) -> None:
    long = " ".join(f"word{i}" for i in range(3000))  # well over gemini-embedding-001's 2,048 tokens
    df = pl.DataFrame({"text": [long, "short"]})
    est = df.gemini.estimate_embed("text")
    assert est.over_input_limit == 1 and "2,048-token input limit" in repr(est)
    with pytest.warns(GeminiBatchWarning, match="longer than gemini-embedding-001's input limit"):
        out = df.gemini.embed("text", client=emu.client(), output_dimensionality=8, **FAST)
    assert out.get_column("embedding_error").null_count() == 2  # the service cuts them silently: a vector each
    assert_vectors(out, [long, "short"], dims=8)


def test_a_model_without_batch_embeds_only_in_sync_mode(emu: Emulator) -> None:
    with pytest.raises(ModelError, match="mode='sync'"):
        frame().gemini.embed("text", model="gemini-embedding-2-preview", client=emu.client(), **FAST)
    assert emu.requests == []
    out = frame().gemini.embed("text", model="gemini-embedding-2-preview", mode="sync", client=emu.client(),
                               output_dimensionality=8, **FAST)  # fmt: skip
    assert out.get_column("embedding_error").null_count() == len(TEXTS) - 1
    got = out.get_column("embedding").to_list()[0]
    values = responses.embedding("a red apple", model="gemini-embedding-2-preview", dimensions=8)
    assert got == pytest.approx(normalized(values), abs=2e-6)


def test_no_vector_at_all_for_an_unknown_model_is_errors_not_a_panic(emu: Emulator) -> None:
    empty = pl.DataFrame({"text": [None, None]}, schema={"text": pl.String})
    out = empty.gemini.embed("text", model="my-embedding-model", check_model=False, client=emu.client(), **FAST)
    assert out.height == 2 and out.get_column("embedding_error").null_count() == 0
    assert isinstance(out.schema["embedding"], pl.Array)


def test_sync_budget_is_checked_at_the_standard_price(emu: Emulator) -> None:
    df = pl.DataFrame({"text": [f"text {i} " * 50 for i in range(200)]})
    est = df.gemini.estimate_embed("text")
    between = (est.cost + est.sync_cost) / 2  # type: ignore[operator]
    with pytest.raises(BudgetExceededError, match=r"standard \(sync mode\) price"):
        df.gemini.embed("text", client=emu.client(), mode="sync", max_cost=between, **FAST)
    assert emu.requests == []
    run = df.gemini.submit_embed("text", client=emu.client(), mode="sync", output_dimensionality=4, **FAST)
    assert run.cost().actual is None  # batchEmbedContents reports no token counts: unknown, not $0


def test_empty_texts_are_not_sent_and_never_fail_their_neighbours(emu: Emulator) -> None:
    texts = [f"w{i}" for i in range(150)]
    texts[5] = ""
    df = pl.DataFrame({"text": texts})
    est = df.gemini.estimate_embed("text")
    assert est.rows_not_sent == 1 and est.requests == 149
    for mode in ("sync", "batch"):
        out = df.gemini.embed("text", client=emu.client(), mode=mode, output_dimensionality=4, **FAST)  # type: ignore[arg-type]
        errors = out.get_column("embedding_error")
        assert errors.null_count() == 149 and errors[5] == "not sent: the text is empty", mode


def test_one_refused_text_in_a_sync_call_fails_only_its_row(emu: Emulator) -> None:
    def embedder(request):  # type: ignore[no-untyped-def]
        if request.text == "w7":
            from polars_gemini.emulator import EmulatedError

            raise EmulatedError(400, "this text is refused", "INVALID_ARGUMENT")
        return responses.embedding(request.text, dimensions=request.dimensions)

    emu.settings.embedder = embedder
    df = pl.DataFrame({"text": [f"w{i}" for i in range(150)]})
    out = df.gemini.embed("text", client=emu.client(), mode="sync", output_dimensionality=4, **FAST)
    errors = out.get_column("embedding_error")
    assert errors.null_count() == 149 and "this text is refused" in errors[7]


def test_sync_mode_raises_a_refused_key_and_retries_transient_failures() -> None:
    from google import genai
    from google.genai import types

    from polars_gemini import APIError

    with Emulator(api_key="right") as emu:
        wrong = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=emu.url))
        with pytest.raises(APIError):
            frame().gemini.embed("text", client=wrong, mode="sync", **FAST)
        emu.fail_http("models.batchEmbedContents", 503, times=6)  # outlasts one call's retries: a second round
        retry = types.HttpRetryOptions(attempts=2, initial_delay=0.01, max_delay=0.01)
        out = frame().gemini.embed("text", client=emu.client(), mode="sync", output_dimensionality=4, retry=retry,
                                   max_retries=3, **FAST)  # fmt: skip
        assert out.get_column("embedding_error").null_count() == len(TEXTS) - 1


def test_a_template_without_placeholder_or_column_is_refused(emu: Emulator) -> None:
    from polars_gemini import TemplateError

    with pytest.raises(TemplateError, match="names no column"):
        frame().gemini.embed("txet", client=emu.client(), **FAST)
    assert emu.requests == []


@pytest.mark.parametrize("value", ["no", None, 1])
def test_normalize_must_be_a_bool(emu: Emulator, value: object) -> None:
    with pytest.raises(ConfigurationError, match="normalize must be True or False"):
        frame().gemini.embed("text", client=emu.client(), normalize=value, **FAST)  # type: ignore[arg-type]


def test_vectors_that_cannot_be_normalized_are_errors(emu: Emulator) -> None:
    emu.settings.embedder = lambda request: [0.0] * (request.dimensions or 3072)
    out = frame().gemini.embed("text", client=emu.client(), output_dimensionality=4, **FAST)
    errors = out.get_column("embedding_error").drop_nulls()
    assert errors.len() == len(TEXTS) and errors.str.contains("cannot be normalized").sum() == len(TEXTS) - 1
    with pytest.warns(GeminiBatchWarning, match="Re-attached"):  # the same work: its vectors are not bought again
        raw = frame().gemini.embed("text", client=emu.client(), output_dimensionality=4, normalize=False, **FAST)
    assert raw.get_column("embedding").to_list()[0] == [0.0] * 4


def test_numpy_integers_are_dimensions() -> None:
    import numpy as np

    est = frame().gemini.estimate_embed("text", output_dimensionality=np.int64(768))  # type: ignore[arg-type]
    assert est.requests == 4


@pytest.mark.parametrize("kind", ["truncated", "garbage", "blank", "wrong_shape", "duplicated"])
def test_corrupt_result_files_lose_no_row(emu: Emulator, kind: str) -> None:
    emu.corrupt_results(kind, lines=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeminiBatchWarning)  # "N result line(s) could not be read": expected here
        out = frame().gemini.embed("text", client=emu.client(), output_dimensionality=8, inline_limit_bytes=0, **FAST)
    assert_vectors(out, TEXTS, dims=8)  # retried in a second round where a line was lost
    assert out.get_column("embedding_error").null_count() == len(TEXTS) - 1


def test_a_results_file_is_read_in_chunks_that_end_at_line_ends(tmp_path: Path) -> None:
    from polars_gemini.run import results

    lines = [f'{{"key":"k{i}","response":{{"tokenCount":"1","embedding":{{"values":[{i},1]}}}}}}' for i in range(500)]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines))  # no final newline, as a writer may leave it
    chunks = list(results._line_chunks(path, size=1000))
    assert len(chunks) > 10 and all(c.endswith(b"\n") for c in chunks[:-1])
    assert b"".join(chunks).decode() == path.read_text()
    parsed, bad = results.parse_embed_file(path, "test", 2)
    assert bad == 0 and parsed.get_column("key").to_list() == [f"k{i}" for i in range(500)]
    assert parsed.get_column("embedding").to_list()[7] == [7.0, 1.0]
