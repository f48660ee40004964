"""What the benchmarks aim at and where they ran: the targets every report checks, and the machine's description.

Shared by `run.py` (which measures) and `report.py` (which writes the tables), so neither imports the other.
"""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any

import polars as pl

# At 1M rows, 2 cores: prepare and ingest >= 30x the per-row way; prepare within 2x of raw Polars I/O; estimate
# under 5 s; peak memory under 3x input + output.
TARGET_SPEEDUP, TARGET_IO_RATIO, TARGET_ESTIMATE_S, TARGET_MEMORY_RATIO = 30.0, 2.0, 5.0, 3.0


def machine() -> dict[str, Any]:
    import google.genai

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "google_genai": google.genai.__version__,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }
