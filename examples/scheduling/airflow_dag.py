"""An Airflow DAG (Airflow 3; 2.x through the fallback imports) that labels each day's reviews at batch price.

    submit ──► wait (a sensor in reschedule mode) ──► finish

* `submit` creates the day's batch jobs and returns in seconds. Retrying it is safe: on the same checkpoint it
  re-attaches to the jobs already created, it never pays twice.
* `wait` pokes every 10 minutes. In reschedule mode the worker slot is free between pokes, so a batch that takes
  hours holds no worker; each poke is one `polars_gemini` refresh (seconds).
* `finish` writes the result file (atomically) and fails the DAG run, without retries, when more rows failed than
  MAX_FAILED allows.

Put this file and `steps.py` in the DAGs folder. The workers need `polars-gemini` installed, GEMINI_API_KEY in their
environment (or a secrets backend that sets it), and the same durable RUNS directory (NFS or another shared mount):
the checkpoint is all the run's state, and any worker may poke.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

import steps

try:  # Airflow 3
    from airflow.sdk import PokeReturnValue, dag, task
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 2.x
    from airflow.decorators import dag, task
    from airflow.exceptions import AirflowFailException
    from airflow.sensors.base import PokeReturnValue

INPUT = os.environ.get("REVIEWS_INPUT", "/data/reviews/{day}.parquet")  # one partition per day
RUNS = os.environ.get("POLARS_GEMINI_RUNS", "/mnt/etl/runs")  # durable and shared by every worker
OUT_DIR = os.environ.get("REVIEWS_OUT_DIR", "/data/labelled")
TEMPLATE = "Classify the sentiment of this review as positive, negative or neutral: {review}"
MODEL = "gemini-2.5-flash"
MAX_COST = 20.0  # USD: the submit task fails before sending anything if the estimate could exceed it
MAX_FAILED = 0.01  # a fraction of the rows (or a count)
STUCK_AFTER = 30.0  # hours: a job still pending or running then is cancelled and its requests go in a new job


def _paths(context: dict[str, Any]) -> dict[str, str]:
    """The day's input, checkpoint and output: by its logical date (a manual Airflow 3 run may have none: then
    the day it was triggered for)."""
    stamp = context.get("logical_date") or context["dag_run"].run_after
    day = stamp.strftime("%Y-%m-%d")
    return {"input": INPUT.format(day=day), "checkpoint": f"{RUNS}/reviews-{day}",
            "output": f"{OUT_DIR}/reviews-{day}.parquet"}  # fmt: skip


@dag(
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=5)},
    tags=["polars-gemini"],
)
def label_reviews() -> None:
    @task
    def submit(**context: Any) -> dict[str, str]:
        paths = _paths(context)
        try:
            summary = steps.submit_step(paths["input"], paths["checkpoint"], template=TEMPLATE, model=MODEL,
                                        max_cost=MAX_COST, stuck_after=STUCK_AFTER)  # fmt: skip
        except steps.BudgetExceededError as exc:  # nothing was sent; a retry would refuse again
            raise AirflowFailException(str(exc)) from exc
        print(f"submitted: {summary}")
        return paths

    # Jobs target 24 h; a stuck one is sent again after STUCK_AFTER, and that one may take a day too.
    @task.sensor(mode="reschedule", poke_interval=timedelta(minutes=10), timeout=timedelta(days=3))
    def wait(paths: dict[str, str]) -> PokeReturnValue:
        return PokeReturnValue(is_done=steps.poll_step(paths["checkpoint"]), xcom_value=paths)

    @task
    def finish(paths: dict[str, str]) -> dict[str, Any]:
        try:
            return steps.finish_step(paths["checkpoint"], paths["output"], max_failed=MAX_FAILED)
        except steps.TooManyFailedRows as exc:  # the file is written; running again would not change it
            raise AirflowFailException(str(exc)) from exc

    finish(wait(submit()))


label_reviews()
