"""A Prefect 3 flow that labels each day's reviews at batch price, one short flow run per scheduled tick.

Every 15 minutes a flow run looks at the day's checkpoint and does the one thing due: submit the day's jobs (first
tick), look at them once (until they are done), or write the result file (last tick). No flow run waits for the
batch (up to 24 h), so no worker or process is held; the checkpoint directory, not the flow run, is the state.
Every tick is idempotent: a repeated or overlapping tick never creates a job twice.

Why not one long flow run: `pause_flow_run` keeps the process alive while paused, and a task polling with
`retries=`/`retry_delay_seconds=` sleeps in it; both hold a worker for hours. `suspend_flow_run` frees it, but
something must call `resume_flow_run` later (the webhook receiver, `polars-gemini webhook serve`, is the push
alternative to these ticks).

Serve it with `python prefect_flow.py` (it needs `steps.py` beside it, `polars-gemini` installed, GEMINI_API_KEY in
the environment and RUNS on durable storage), or deploy it to a work pool with the same cron schedule.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import steps
from prefect import flow, task

INPUT = os.environ.get("REVIEWS_INPUT", "/data/reviews/{day}.parquet")  # one partition per day
RUNS = os.environ.get("POLARS_GEMINI_RUNS", "/mnt/etl/runs")  # durable: it holds all of a run's state
OUT_DIR = os.environ.get("REVIEWS_OUT_DIR", "/data/labelled")
TEMPLATE = "Classify the sentiment of this review as positive, negative or neutral: {review}"
MODEL = "gemini-2.5-flash"
MAX_COST = 20.0  # USD: submitting is refused before anything is sent if the estimate could exceed it
MAX_FAILED = 0.01  # a fraction of the rows (or a count)
STUCK_AFTER = 30.0  # hours: a job still pending or running then is cancelled and its requests go in a new job


@task(retries=3, retry_delay_seconds=60)  # safe to retry: the same checkpoint re-attaches to its jobs
def submit(source: str, checkpoint: str) -> dict[str, Any]:
    return steps.submit_step(source, checkpoint, template=TEMPLATE, model=MODEL, max_cost=MAX_COST,
                             stuck_after=STUCK_AFTER)  # fmt: skip


@task(retries=3, retry_delay_seconds=60)
def poll(checkpoint: str) -> bool:
    return steps.poll_step(checkpoint)


@task
def finish(checkpoint: str, output: str) -> dict[str, Any]:
    return steps.finish_step(checkpoint, output, max_failed=MAX_FAILED)


@flow(name="label-reviews", log_prints=True)
def label_reviews(day: str | None = None) -> str:
    """One tick for `day` (YYYY-MM-DD; default today, UTC): what it did ('submitted', 'pending', 'done', ...).

    A day whose rows failed beyond MAX_FAILED fails its flow run once (`TooManyFailedRows`, the alert); its file
    is written all the same, so later ticks leave the day alone.
    """
    day = day or datetime.now(timezone.utc).strftime("%Y-%m-%d")
    checkpoint, output = f"{RUNS}/reviews-{day}", f"{OUT_DIR}/reviews-{day}.parquet"
    if Path(output).exists():  # finish_step writes it atomically: it exists only once complete
        return "done already"
    if not steps.submitted(checkpoint):
        print(f"submitted: {submit(INPUT.format(day=day), checkpoint)}")
        return "submitted"
    if not poll(checkpoint):
        return "pending"
    print(f"done: {finish(checkpoint, output)}")
    return "done"


if __name__ == "__main__":
    label_reviews.serve(name="label-reviews-every-15-minutes", cron="*/15 * * * *", limit=1)
