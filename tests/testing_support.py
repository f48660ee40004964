"""Shared helpers for the core tests."""

from __future__ import annotations

from typing import Any

from polars_gemini.emulator import ResponderRequest, responses

FAST = {"poll_interval": 0.01, "max_poll_interval": 0.05, "progress": False}


def echo(request: ResponderRequest) -> dict[str, Any]:
    """Answer every prompt with 'echo: <prompt>' so tests can check which answer reached which row."""
    return responses.text("echo: " + request.text)(request)
