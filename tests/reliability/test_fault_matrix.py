"""The fault matrix: every endpoint a batch run calls x 429/500/503/timeout, once and repeatedly.

Each case must end with every row answered and exactly one job per shard on the service: transient faults are
retried (idempotent calls) or looked up by name (job creation), never paid for twice.
"""

from __future__ import annotations

import pytest
from reliability_support import FAST, FILES, RETRY, assert_complete, created, frame

from polars_gemini.emulator import FAULTS, Emulator

ENDPOINTS = ("batches.create", "batches.get", "batches.list", "files.upload_start", "files.upload_chunk",
             "files.download", "files.delete")  # fmt: skip
# Repeatedly: one fewer than the retry policy's attempts, so that the last attempt succeeds.
TIMES = (1, (RETRY.attempts or 1) - 1)


@pytest.mark.parametrize("times", TIMES, ids=["once", "repeatedly"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_fault_matrix(emu: Emulator, endpoint: str, fault: str, times: int) -> None:
    emu.inject(endpoint, fault, times=times, timeout_seconds=0.6)
    client = emu.client(timeout=250)
    out = frame().gemini.batch("{text}", model="gemini-2.0-flash", client=client, max_requests_per_job=3,
                               **FILES, **FAST)  # fmt: skip
    assert_complete(out, 6)
    assert created(emu) == 2  # two shards, two jobs: nothing created twice
    assert emu.errors == []
