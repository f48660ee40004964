"""The `polars-gemini` command: errors are one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from google import genai

from polars_gemini import ConfigurationError
from polars_gemini.cli.demo import run as run_demo
from polars_gemini.cli.main import main

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}


@pytest.fixture
def checkpoint(tmp_path: Path, gemini_client: genai.Client) -> Path:
    """A finished run's checkpoint directory."""
    root = tmp_path / "run"
    df = pl.DataFrame({"t": ["a", "b", None]})
    df.gemini.batch("{t}", model="gemini-2.0-flash", client=gemini_client, checkpoint=root, **FAST)
    return root


def status_error(capsys: pytest.CaptureFixture[str], path: Path) -> str:
    """Run `polars-gemini status path`, check it failed cleanly, and return its one stderr line."""
    assert main(["status", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("polars-gemini status: error: ")
    return err


def test_status_of_a_finished_run(capsys: pytest.CaptureFixture[str], checkpoint: Path) -> None:
    assert main(["status", str(checkpoint)]) == 0
    out, err = capsys.readouterr()
    assert "rows: 3 = 2 done + 1 failed + 0 pending" in out and err == ""


def test_status_of_a_missing_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "does not exist. Hint: pass the directory given as checkpoint=" in status_error(capsys, tmp_path / "nope")


def test_status_of_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("x")
    assert "is a file, not a directory" in status_error(capsys, tmp_path / "f.txt")


def test_status_of_a_directory_that_is_not_a_checkpoint(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert "is not a polars-gemini checkpoint (no manifest.json)" in status_error(capsys, tmp_path)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda root: (root / "manifest.json").write_text('{"model": '), r"manifest.json is truncated or corrupted"),
        (lambda root: (root / "manifest.json").write_text("[1, 2]"), r"manifest.json is not a polars-gemini manifest"),
        (lambda root: (root / "rows.parquet").write_bytes(b"PAR1 garbage"), r"rows.parquet is truncated or corrupted"),
        (lambda root: (root / "rows.parquet").unlink(), r"rows\.parquet is missing"),
        (
            lambda root: pl.DataFrame({"x": [1]}).write_parquet(root / "rows.parquet"),
            r"is incomplete or corrupted \(ColumnNotFoundError",
        ),
    ],
    ids=["truncated-manifest", "manifest-not-a-dict", "garbage-rows", "missing-rows", "rows-without-key"],
)
def test_status_of_a_damaged_checkpoint(
    capsys: pytest.CaptureFixture[str], checkpoint: Path, damage: Callable[[Path], object], needle: str
) -> None:
    damage(checkpoint)
    assert re.search(needle, status_error(capsys, checkpoint))


def test_status_command_in_a_subprocess(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    proc = subprocess.run(
        [sys.executable, "-m", "polars_gemini.cli.main", "status", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"polars-gemini status: error: Checkpoint {missing} does not exist. "
        "Hint: pass the directory given as checkpoint= to batch() or submit().\n"
    )


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["demo", "--rows", "-5"], "argument --rows: must be at least 1, got -5"),
        (["demo", "--rows", "0"], "argument --rows: must be at least 1, got 0"),
        (["demo", "--rows", "many"], "argument --rows: expected a whole number, got 'many'"),
        (["emulator", "--job-seconds", "-1"], "argument --job-seconds: must be at least 0, got -1"),
    ],
)
def test_bad_arguments_are_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert needle in err and "Traceback" not in err and out == ""


def test_demo_function_rejects_no_rows() -> None:
    with pytest.raises(ConfigurationError, match=r"at least 1 row, got rows=0"):
        run_demo(rows=0)


def test_prices_command_prints_every_model_and_tier(capsys: pytest.CaptureFixture[str]) -> None:
    from polars_gemini.core.models import MODELS

    assert main(["prices"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert header.split() == ["model", "tier", "prompt", "input", "output", "cached", "audio", "cached", "audio",
                              "storage/h", "as", "of", "source"]  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.startswith("gemini-")]
    assert {row[0] for row in rows} >= {name for name, info in MODELS.items() if info.supports_batch}
    assert {row[1] for row in rows} == {"standard", "batch", "flex", "priority"}
    assert ["gemini-2.5-flash", "priority", "any", "0.54", "4.5", "0.054", "1.8", "0.18", "1.8", "2026-08-04"] in [
        row[:10] for row in rows
    ]
    assert ["gemini-2.5-flash", "batch", "any", "0.15", "1.25", "0.03", "0.5", "0.1", "1"] in [row[:9] for row in rows]
    assert "sources:" in out and "https://ai.google.dev/gemini-api/docs/pricing" in out and "notes:" in out


def test_prices_command_filters_by_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "--model", "models/gemini-2.5-pro"]) == 0
    out, _ = capsys.readouterr()
    rows = [line.split() for line in out.splitlines() if line.startswith("gemini-")]
    assert {row[0] for row in rows} == {"gemini-2.5-pro"} and len(rows) == 8  # 4 tiers x 2 prompt sizes
    assert ["gemini-2.5-pro", "priority", ">200k", "4.5", "27", "0.45", "-", "-", "8.1"] in [row[:9] for row in rows]
    assert "pricing-2026-08-04: https://ai.google.dev/gemini-api/docs/pricing" in out
    assert "pricing-2026-03-30:" not in out  # only the sources the printed rows cite (and the notes name)


def test_prices_command_for_an_unknown_model_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prices", "--model", "gemini-9-ultra"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("polars-gemini prices: error: no price for model 'gemini-9-ultra'")
