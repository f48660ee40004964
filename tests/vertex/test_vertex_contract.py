"""The library's end-to-end contract, on both backends: every row once, in order, with its answer or its error; typed
columns; retries of what failed; nothing created twice. Vertex AI runs go through the real SDK in Vertex mode and a
real Cloud Storage emulator."""

from __future__ import annotations

import collections

import polars as pl
import pytest
from vertex_support import BACKENDS, FAST, backend

import polars_gemini
from polars_gemini.emulator.gcs import GcsEmulator


def frame(n: int = 12) -> pl.DataFrame:
    texts = [f"item {i % 7}" for i in range(n)]  # repeats: one request per distinct prompt
    texts[3] = None  # type: ignore[call-overload]  # a null row: no request, null answer
    return pl.DataFrame({"id": list(range(n)), "text": texts})


@pytest.mark.parametrize("kind", BACKENDS)
def test_every_row_once_in_order(kind: str, gcs: GcsEmulator) -> None:
    df = frame()
    with backend(kind, gcs) as b:
        out = polars_gemini.batch(df, "Say: {text}", model="gemini-2.5-flash", client=b.client,
                                  max_requests_per_job=3, **b.options, **FAST)  # fmt: skip
        assert out.get_column("id").to_list() == list(range(12))
        expected = [None if t is None else f"echo: Say: {t}" for t in df.get_column("text")]
        assert out.get_column("response").to_list() == expected
        answered = collections.Counter(a.prompt for a in b.emu.answered())
        assert set(answered) == {f"Say: item {i}" for i in range(7)} and max(answered.values()) == 1
        assert b.emu.calls(b.create) == 3  # 7 distinct prompts, 3 a job
        names = collections.Counter(b.display_names())
        assert len(names) == 3 and max(names.values()) == 1
        if kind == "vertex":  # request shards deleted; without a checkpoint the predictions stay, for a repeated call
            left = b.objects()
            assert left and not any(n.endswith("/input.jsonl") for n in left)
            assert all("/predictions/" in n for n in left)


@pytest.mark.parametrize("kind", BACKENDS)
def test_schema_mode_gives_typed_columns(kind: str, gcs: GcsEmulator) -> None:
    df = pl.DataFrame({"review": ["great", "awful", "fine"]})
    schema = {"sentiment": pl.Enum(["positive", "negative", "neutral"]), "confidence": pl.Float64}
    with backend(kind, gcs, responder=None) as b:
        out = polars_gemini.batch(df, "Classify: {review}", model="gemini-2.5-flash", schema=schema,
                                  client=b.client, **b.options, **FAST)  # fmt: skip
    assert out.schema["sentiment"] == schema["sentiment"] and out.schema["confidence"] == pl.Float64
    assert out.get_column("response_error").null_count() == 3
    assert out.get_column("sentiment").null_count() == 0 and out.get_column("confidence").null_count() == 0


@pytest.mark.parametrize("kind", BACKENDS)
def test_shuffled_results_join_back_by_key(kind: str, gcs: GcsEmulator) -> None:
    df = pl.DataFrame({"id": range(40), "text": [f"row {i}" for i in range(40)]})
    with backend(kind, gcs, shuffle_results=True) as b:
        out = polars_gemini.batch(df, "{text}", model="gemini-2.5-flash", client=b.client, **b.options, **FAST)
    assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(40)]


@pytest.mark.parametrize(("files", "echo"), [(1, "proto"), (3, "proto"), (2, "verbatim")])
def test_vertex_without_the_echoed_key_joins_on_the_echoed_request(gcs: GcsEmulator, files: int, echo: str) -> None:
    """Vertex documents no per-row key: with the key not echoed, the output shuffled and split into several files,
    each line is matched by the digest of the request it echoes (re-serialized in camelCase)."""
    df = pl.DataFrame({"id": range(30), "text": [f"row {i}" for i in range(30)]})
    with backend("vertex", gcs, shuffle_results=True) as b:
        b.emu.settings.vertex_echo_fields = False
        b.emu.settings.vertex_output_files = files
        b.emu.settings.vertex_echo_request = echo
        out = polars_gemini.batch(df, "{text}", model="gemini-2.5-flash", client=b.client,
                                  system_instruction="Be brief.", **b.options, **FAST)  # fmt: skip
        assert b.emu.calls("vertex.batches.create") == 1
    assert out.get_column("response").to_list() == [f"echo: row {i}" for i in range(30)]
    assert out.get_column("response_error").null_count() == 30


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_checkpointed_run_resumes_without_creating_again(kind: str, gcs: GcsEmulator, tmp_path) -> None:
    df = frame()
    with backend(kind, gcs) as b:
        run = polars_gemini.submit(df, "Say: {text}", model="gemini-2.5-flash", client=b.client,
                                   checkpoint=tmp_path / "ckpt", **b.options, **FAST)  # fmt: skip
        run.close()
        creates = b.emu.calls(b.create)
        storage = {"storage_client": b.options["storage_client"]} if kind == "vertex" else {}
        out = polars_gemini.resume(tmp_path / "ckpt", client=b.client, **storage, **FAST).result()
        assert b.emu.calls(b.create) == creates == 1
    assert out.get_column("response").to_list() == [None if t is None else f"echo: Say: {t}"
                                                    for t in df.get_column("text")]  # fmt: skip


@pytest.mark.parametrize("kind", BACKENDS)
def test_pandas_in_pandas_out(kind: str, gcs: GcsEmulator) -> None:
    pd = pytest.importorskip("pandas")
    pdf = pd.DataFrame({"text": ["a", None, "b", "a"], "n": [1, 2, 3, 4]}, index=[10, 20, 30, 40])
    with backend(kind, gcs) as b:
        out = pdf.gemini.batch("Say: {text}", model="gemini-2.5-flash", client=b.client, **b.options, **FAST)
    assert isinstance(out, pd.DataFrame) and list(out.index) == [10, 20, 30, 40]
    assert out["n"].dtype == pdf["n"].dtype and out["text"].dtype == pdf["text"].dtype
    assert out["response"].tolist()[0] == "echo: Say: a"
    assert out["response"].isna().tolist() == [False, True, False, False]
