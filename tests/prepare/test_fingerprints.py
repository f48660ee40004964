"""The plan and run fingerprints, hashed a slice of keys at a time (and the run's keys sorted as numbers), are the
digests of all keys joined into one string: the same work keeps its job names and checkpoints across versions."""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict

import polars as pl
import pytest

from polars_gemini.prepare import plan as _plan
from polars_gemini.prepare.plan import Limits, Plan, plan_fingerprint, run_id_for
from polars_gemini.prepare.requests import build_spec


@pytest.mark.parametrize("size", [0, 1, 5, 2_345])
def test_fingerprints_equal_the_digest_of_all_keys_joined(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(_plan, "_HASH_SLICE", 100)  # many slices
    rng = random.Random(size)
    keys = [f"{rng.getrandbits(128):032x}" for _ in range(size)]
    spec = build_spec("gemini-2.0-flash")
    rows = pl.DataFrame({"key": [*keys, None]}, schema={"key": pl.String})
    plan = Plan(spec, rows, pl.DataFrame({"key": keys}, schema={"key": pl.String}), ())
    expected_plan = hashlib.sha256(spec.fingerprint.encode())
    expected_plan.update(("".join(keys) + "-").encode())
    assert plan_fingerprint(plan) == expected_plan.hexdigest()
    expected_run = hashlib.sha256(spec.fingerprint.encode())
    expected_run.update("".join(sorted(keys)).encode())
    expected_run.update(repr(sorted(asdict(Limits()).items())).encode())
    assert run_id_for(plan, Limits()) == expected_run.hexdigest()[:12]


def test_keys_of_another_form_are_sorted_as_strings() -> None:
    keys = pl.Series("key", ["b", "A", "ab", "0" * 32])
    assert pl.concat(list(_plan._sorted(keys))).to_list() == sorted(keys.to_list())
