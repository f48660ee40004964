"""Saving a run's definition into its checkpoint and rebuilding the run from the directory alone."""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from google.genai import types

from polars_gemini.api.options import check_options, check_vertex
from polars_gemini.checkpoint.files import (
    FORMAT_VERSION,
    read_json,
    read_parquet,
    sink_parquet,
    write_json,
    write_parquet,
)
from polars_gemini.checkpoint.location import Location, open_location
from polars_gemini.checkpoint.store import Store
from polars_gemini.core.errors import CheckpointCorruptedError, CheckpointError, SchemaError
from polars_gemini.core.version import __version__
from polars_gemini.cost.estimate import Estimate
from polars_gemini.prepare.plan import (
    Limits,
    Plan,
    check_clash,
    output_columns,
    plan_fingerprint,
    run_id_for,
    shards_of,
)
from polars_gemini.prepare.requests import KEY, PROMPT, RequestSpec, build_spec_from_config
from polars_gemini.prepare.schema import Field, field_from_json, field_to_json, from_dtype
from polars_gemini.prepare.stream import TOKENS
from polars_gemini.run.lifecycle import MAX_ACTIVE_JOBS, Run, RunOptions
from polars_gemini.tokens.tokenizer import estimate_tokens

if TYPE_CHECKING:
    import google.cloud.storage as storage
    from google import genai

MANIFEST = "manifest.json"
MEDIA = "media.parquet"
ROWS_ASKING = "rows"


def open_run(
    root: Location,
    frame: pl.DataFrame | pl.LazyFrame,
    plan: Plan,
    template: str | pl.Expr,
    client: genai.Client | None,
    options: RunOptions,
    estimate: Estimate | None = None,
    *,
    lean: bool = False,
) -> Run:
    """The run for this call in `root`: the same run again if the manifest matches, else a new run (results of
    earlier runs are reused by key, so only requests without a stored result are sent). `lean`: results stay in
    their files, never all in memory (`Store(lean=True)`)."""
    store = Store(root, lean=lean)
    try:
        fingerprint = plan_fingerprint(plan)
        manifest = read_json(root / MANIFEST) if (root / MANIFEST).exists() else None
        if manifest is not None and manifest.get("plan_fingerprint") == fingerprint:
            run = Run(frame, plan, client, options, store, manifest["run_id"], estimate=estimate)
            run.round = max((j.attempt for j in store.jobs if j.run_id == run.run_id), default=0)
            return run
        # The run id comes from the work, so a lost jobs.parquet still finds its jobs on the service by name.
        run_id = run_id_for(plan, options.limits) if options.reuse_jobs else uuid.uuid4().hex[:12]
        run = Run(frame, plan, client, options, store, run_id, estimate=estimate)
        _save(root, run, template, fingerprint)
        return run
    except BaseException:
        store.close()
        raise


def _save(root: Location, run: Run, template: str | pl.Expr, fingerprint: str) -> None:
    spec, field = run.plan.spec, run.plan.spec.field
    if field is not None:
        write_parquet(root / "schema.parquet", pl.DataFrame(schema={"value": field.dtype}))
    if isinstance(run.frame, pl.LazyFrame):
        sink_parquet(root / "input.parquet", run.frame)
    else:
        write_parquet(root / "input.parquet", run.frame)
    write_parquet(root / "rows.parquet", run.plan.rows)
    write_parquet(root / "requests.parquet", _requests_table(run.plan))
    if run.plan.media is not None:  # what each media marker of the prompts is: type, hash, where to read it
        write_parquet(root / MEDIA, run.plan.media)
    manifest = {
        "format": FORMAT_VERSION, "library_version": __version__, "created_at": time.time(), "run_id": run.run_id,
        "model": spec.model, "template": template if isinstance(template, str) else None,
        "template_expr": None if isinstance(template, str) else _expr_json(template),
        "config": spec.config.model_dump(mode="json", exclude_none=True, exclude={"http_options"}),
        "task": spec.task, "embed": spec.tail if spec.embeds else None,
        "nullable": _nullable_paths(field) if field is not None else None,
        "field": field_to_json(field) if field is not None else None,
        "request_fingerprint": spec.fingerprint, "plan_fingerprint": fingerprint,
        "estimate": run.estimate.to_dict() if run.estimate else None,
        "request_files": _request_files(root, run.plan, spec.fingerprint),
        "options": {"output": run.options.output, "prefix": run.options.prefix, "max_retries": run.options.max_retries,
                    "keep_files": run.options.keep_files, "normalize": run.options.normalize,
                    "limits": dataclasses.asdict(run.options.limits), "webhook": list(run.options.webhook),
                    "stuck_after": run.options.stuck_after, "fallback": run.options.fallback,
                    "staging": run.options.staging},
    }  # fmt: skip
    write_json(root / MANIFEST, manifest)


def _request_files(root: Location, plan: Plan, fingerprint: str) -> list[str]:
    """A streamed plan's request files, as names relative to the checkpoint. In a local checkpoint they were written
    inside it; a remote checkpoint gets a copy of each (uploaded here, before any job exists), so that another
    machine can resume the run."""
    names = []
    for path in plan.files:
        name = root.relative_of(Path(path))
        if name is None:
            name = f"inputs/{fingerprint[:16]}/{Path(path).name}"
            root.publish(name, Path(path))
        names.append(name)
    return names


def _expr_json(template: pl.Expr) -> str:
    """An expression template for the record (resuming needs only the saved requests): Polars' JSON form, or its
    text where it holds a Python function that Polars cannot serialize without cloudpickle."""
    try:
        return template.meta.serialize(format="json")
    except (pl.exceptions.PolarsError, ValueError, TypeError):
        return str(template)


def _requests_table(plan: Plan) -> pl.DataFrame:
    """Requests as saved: key, prompt (unless streamed to request files), size, which input rows asked for it (for a
    plan made in memory; a streamed plan, of millions of rows, has that in rows.parquet only), and its estimated
    input tokens."""
    if plan.files:
        return plan.requests
    asked = (
        plan.rows.with_row_index(ROWS_ASKING)
        .filter(pl.col(KEY).is_not_null())
        .group_by(KEY, maintain_order=True)
        .agg(pl.col(ROWS_ASKING))
    )
    requests = plan.requests.join(asked, on=KEY, how="left", maintain_order="left")
    if PROMPT not in requests.columns:
        return requests
    return requests.with_columns(estimate_tokens(pl.col(PROMPT)).alias(TOKENS))


def _nullable_paths(field: Field, path: str = "") -> list[str]:
    own = [path] if field.nullable else []
    kids = [p for name, f in field.children for p in _nullable_paths(f, f"{path}.{name}")]
    item = _nullable_paths(field.item, f"{path}[]") if field.item is not None else []
    return own + kids + item


def _field(dtype: Any, nullable: set[str], path: str = "") -> Field:
    base = from_dtype(dtype, where=path or "value")
    if isinstance(dtype, pl.Struct):
        kids = tuple((f.name, _field(f.dtype, nullable, f"{path}.{f.name}")) for f in dtype.fields)
        return Field(dtype, path in nullable, children=kids)
    if isinstance(dtype, pl.List):
        return Field(dtype, path in nullable, item=_field(dtype.inner, nullable, f"{path}[]"))
    return Field(base.dtype, path in nullable)


def resume(
    checkpoint: str | os.PathLike[str],
    *,
    client: genai.Client | None = None,
    output: str | None = None,
    prefix: str | None = None,
    max_retries: int | None = None,
    keep_files: bool | None = None,
    poll_interval: float = 5.0,
    max_poll_interval: float = 60.0,
    max_concurrency: int = 8,
    progress: bool = True,
    usage: bool = False,
    retry: types.HttpRetryOptions | None = None,
    max_active_jobs: int = MAX_ACTIVE_JOBS,
    max_enqueued_tokens: int | None = None,
    resubmit_lost: bool = False,
    stuck_after: float | None = None,
    fallback: Literal["batch", "flex"] | None = None,
    submit: bool = True,
    stream: bool = False,
    storage_client: storage.Client | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Run:
    """Re-open the run saved in `checkpoint` from any process: re-attach to its jobs, submit what never was.

    `checkpoint` is the directory, or the object-storage URL (`s3://bucket/prefix`, `gs://...`, `az://...`) the run
    was started with, from any machine; `storage_options` are its credentials as Polars takes them (else the
    environment's).

    `stream=True` keeps the results in their files and the input in its file (scanned, never read whole), for a
    run too large for memory, to be written out with `run.sink_parquet(path)`; `run.result()` still works.

    `submit=False` only opens it: nothing is created until `wait()`/`result()`, so `run.cancel()` can drop the jobs a
    crash left queued or unsent without paying for them.

    `output`, `prefix`, `max_retries`, `keep_files`, `stuck_after` and `fallback` default to what the run was started
    with (and so do its `webhook` and, for a Vertex AI run, its `staging` prefix; pass the same kind of `client`, and
    `storage_client=` if the run was given one). Requests whose job
    or results the service no longer has (jobs are kept 48 hours) get an error saying so; `resubmit_lost=True` pays
    for them again.

    >>> run = polars_gemini.resume("runs/reviews", client=client)  # doctest: +SKIP
    >>> out = run.result()  # doctest: +SKIP
    """
    from polars_gemini.service.gemini import client_from_env

    check_options({name: value for name, value in locals().items()
                   if name not in ("checkpoint", "storage_options") and value is not None})  # fmt: skip
    root = open_location(checkpoint, storage_options)
    if not (root / MANIFEST).exists():
        raise CheckpointError(
            f"{root} holds no run (no {MANIFEST}). Start it with batch(..., checkpoint={str(root)!r})."
        )
    manifest = read_json(root / MANIFEST)
    saved = manifest["options"]
    run_options = RunOptions(
        output=saved["output"] if output is None else output, prefix=saved["prefix"] if prefix is None else prefix,
        max_retries=saved["max_retries"] if max_retries is None else max_retries,
        keep_files=saved["keep_files"] if keep_files is None else keep_files, limits=Limits(**saved["limits"]),
        poll_interval=poll_interval, max_poll_interval=max_poll_interval, max_concurrency=max_concurrency,
        progress=progress, usage=usage, retry=retry, max_active_jobs=max_active_jobs,
        max_enqueued_tokens=max_enqueued_tokens, resubmit_lost=resubmit_lost, normalize=saved.get("normalize", True),
        webhook=tuple(saved.get("webhook") or ()),
        stuck_after=saved.get("stuck_after") if stuck_after is None else stuck_after,
        fallback=saved.get("fallback", "batch") if fallback is None else fallback, staging=saved.get("staging"),
    )  # fmt: skip
    spec = _spec(root, manifest)
    rows = read_parquet(root / "rows.parquet")
    requests = read_parquet(root / "requests.parquet").drop(ROWS_ASKING, strict=False)
    entries = [root / f for f in manifest.get("request_files") or ()]
    missing = [str(f) for f in entries if not f.exists()]
    files = tuple(f.local() for f in entries) if not missing else ()
    if missing:
        raise CheckpointCorruptedError(
            f"Request file(s) of the streamed run in {root} are missing: {', '.join(missing[:3])}. Restore them, or "
            "run the same batch(...) call again: its jobs are found on the service by name, nothing is paid twice."
        )
    media = read_parquet(root / MEDIA) if (root / MEDIA).exists() else None
    plan = Plan(spec, rows, requests, shards_of(requests, "file") if files else (), files, media)
    frame = pl.scan_parquet((root / "input.parquet").local()) if stream else read_parquet(root / "input.parquet")
    check_clash(frame.collect_schema().names(), output_columns(spec, run_options.output, run_options.prefix, usage))
    client = client or client_from_env()
    storage = check_vertex(client, plan, run_options, "batch", storage_client)  # a Vertex AI run's own checks
    run = open_run(root, frame, plan, manifest["template"] or "", client, run_options,
                   _estimate(manifest.get("estimate")), lean=stream)  # fmt: skip
    run.storage = storage
    run.extra_rounds = 1 if resubmit_lost else 0
    try:
        if stream:
            run.spill_rows()
        return run.submit() if submit else run
    except BaseException:
        run.close()
        raise
    finally:
        run.store.opened()


def _estimate(saved: dict[str, Any] | None) -> Estimate | None:
    """The estimate made when the run was submitted, as the manifest recorded it."""
    if not saved:
        return None
    names = {f.name for f in dataclasses.fields(Estimate)}
    values = {k: v for k, v in saved.items() if k in names}
    tuples = {name: tuple(values.get(name, ())) for name in ("assumptions", "cost_parts")}  # JSON gave lists
    return Estimate(**(values | tuples))


def _saved_field(root: Location, manifest: dict[str, Any], dtype: Any) -> Field:
    """The schema tree as saved: nullability and constraints (`field`), or, from older manifests, nullability."""
    if manifest.get("field") is None:
        return _field(dtype, set(manifest["nullable"]))
    try:
        return field_from_json(manifest["field"], dtype)
    except SchemaError as exc:
        raise CheckpointCorruptedError(f"{root / MANIFEST}: its schema does not fit schema.parquet ({exc}).") from None


def _spec(root: Location, manifest: dict[str, Any]) -> RequestSpec:
    field = None
    if manifest.get("nullable") is not None:
        dtype = read_parquet(root / "schema.parquet").schema["value"]
        field = _saved_field(root, manifest, dtype)
    config = types.GenerateContentConfig.model_validate(manifest["config"])
    spec = build_spec_from_config(manifest["model"], config, field, manifest.get("embed"))
    if spec.fingerprint != manifest["request_fingerprint"]:
        raise CheckpointCorruptedError(
            f"{root / MANIFEST} does not reproduce its own request fingerprint (edited by hand, or written by an "
            "incompatible version). Nothing was sent."
        )
    return spec


__all__ = ["Limits", "open_run", "resume"]
