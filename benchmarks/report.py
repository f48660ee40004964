"""The results table (printed, `latest.md`) and the raw records (`latest.json`), with the targets checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import goals

HEADER = (
    "stage",
    "rows",
    "library s",
    "rows/s",
    "per-row s",
    "x faster than per-row",
    "Polars I/O s",
    "x Polars I/O",
    "peak MB",
    "in+out MB",
    "peak/(in+out)",
)


def _find(records: list[dict[str, Any]], stage: str, rows: int, variant: str) -> dict[str, Any] | None:
    return next((r for r in records if (r["stage"], r["rows"], r["variant"]) == (stage, rows, variant)), None)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (stage, rows): the library's numbers and its ratios to both references."""
    out = []
    for stage, rows in dict.fromkeys((r["stage"], r["rows"]) for r in records):
        lib = _find(records, stage, rows, "library")
        if lib is None:
            continue
        per_row, io = _find(records, stage, rows, "per_row"), _find(records, stage, rows, "polars_io")
        in_out = lib["input_bytes"] + lib["output_bytes"]
        row = {
            "stage": stage,
            "rows": rows,
            "skipped": lib["skipped"],
            "seconds": lib["seconds"],
            "rows_per_s": rows / lib["seconds"] if lib["seconds"] else None,
            "per_row_seconds": per_row["seconds"] if per_row else None,
            "per_row_extrapolated": bool(per_row and per_row["extrapolated"]),
            "speedup": per_row["seconds"] / lib["seconds"] if per_row and lib["seconds"] else None,
            "io_seconds": io["seconds"] if io else None,
            "io_ratio": lib["seconds"] / io["seconds"] if io and io["seconds"] else None,
            "peak_bytes": lib["peak_bytes"],
            "in_out_bytes": in_out,
            "memory_ratio": lib["peak_bytes"] / in_out if lib["peak_bytes"] and in_out else None,
        }
        if stage == "e2e":
            row |= {k: lib[k] for k in ("emulator_seconds", "emulator_generation_seconds")}
            if per_row:
                row["per_row_emulator_seconds"] = per_row["emulator_seconds"]
        out.append(row)
    return out


def _num(value: float | None, fmt: str = "{:,.2f}") -> str:
    return "—" if value is None else fmt.format(value)


def table_rows(summary: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    rows = []
    for s in summary:
        if s["skipped"]:
            rows.append((s["stage"], f"{s['rows']:,}", "skipped", *("—",) * 8))
            continue
        per_row = _num(s["per_row_seconds"]) + (" (extrapolated)" if s["per_row_extrapolated"] else "")
        rows.append(
            (
                s["stage"],
                f"{s['rows']:,}",
                _num(s["seconds"], "{:,.3f}"),
                _num(s["rows_per_s"], "{:,.0f}"),
                per_row,
                _num(s["speedup"], "{:,.1f}"),
                _num(s["io_seconds"], "{:,.3f}"),
                _num(s["io_ratio"]),
                _num(s["peak_bytes"] and s["peak_bytes"] / 1e6, "{:,.0f}"),
                _num(s["in_out_bytes"] / 1e6, "{:,.0f}"),
                _num(s["memory_ratio"]),
            )
        )
    return rows


def markdown(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    return "\n".join([*lines, *("| " + " | ".join(r) + " |" for r in rows)])


def targets(summary: list[dict[str, Any]]) -> list[str]:
    """The issue's targets at the largest size measured."""
    if not summary:
        return []
    top = max(s["rows"] for s in summary if s["stage"] != "e2e") if any(s["stage"] != "e2e" for s in summary) else 0
    lines = []
    for s in (s for s in summary if s["rows"] == top and not s["skipped"]):
        checks = []
        if s["stage"] in ("prepare", "ingest-text", "ingest-typed"):
            speedup, io_ratio = s["speedup"], s["io_ratio"]
            checks.append(("x per-row", speedup, speedup is not None and speedup >= goals.TARGET_SPEEDUP))
            checks.append(("x Polars I/O", io_ratio, io_ratio is not None and io_ratio <= goals.TARGET_IO_RATIO))
        if s["stage"] == "estimate":
            checks.append(("seconds", s["seconds"], s["seconds"] < goals.TARGET_ESTIMATE_S))
        ratio = s["memory_ratio"]
        checks.append(("peak/(in+out)", ratio, ratio is not None and ratio < goals.TARGET_MEMORY_RATIO))
        for name, value, ok in checks:
            lines.append(f"- {'met' if ok else 'MISSED'}: {s['stage']} at {top:,} rows, {name} = {_num(value)}")
    return lines


def e2e_notes(summary: list[dict[str, Any]]) -> list[str]:
    notes = []
    for s in (s for s in summary if s["stage"] == "e2e"):
        own = s["seconds"] - s["emulator_seconds"]
        notes.append(
            f"- e2e at {s['rows']:,} rows: {s['seconds']:.2f} s wall, of which the emulator's own request handling "
            f"{s['emulator_seconds']:.2f} s (results generation {s['emulator_generation_seconds']:.2f} s); "
            f"the rest, {own:.2f} s, is the library, the SDK and HTTP."
        )
        if s.get("per_row_emulator_seconds") is not None and s["per_row_seconds"] is not None:
            own_ref = s["per_row_seconds"] - s["per_row_emulator_seconds"]
            notes.append(
                f"- the per-row SDK script took {s['per_row_seconds']:.2f} s ({own_ref:.2f} s outside the emulator): "
                f"{own_ref / own:.1f}x the library's own time."
                if own > 0
                else ""
            )
    return notes


def write(records: list[dict[str, Any]], out: Path) -> None:
    summary = summarize(records)
    text = markdown(table_rows(summary))
    notes = ["", "Targets:", *targets(summary), "", *e2e_notes(summary)]
    print("\n" + text + "\n" + "\n".join(notes))
    out.mkdir(parents=True, exist_ok=True)
    payload = {"machine": goals.machine(), "summary": summary, "records": records}
    (out / "latest.json").write_text(json.dumps(payload, indent=2) + "\n")
    m = payload["machine"]
    header = f"Measured {m['date']} on {m['cpus']} CPUs, Polars {m['polars']}, Python {m['python']}."
    (out / "latest.md").write_text("\n".join([header, "", text, *notes]) + "\n")
