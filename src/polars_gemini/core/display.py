"""How the library's objects show themselves: dollars, and small tables as text and as HTML for notebooks.

Every report (an estimate, a run's status, its cost, a checkpoint's status, the live progress display) is built from
the same pieces, so they look alike. The HTML is well-formed XML (closed tags, quoted attributes, every value
escaped with `html.escape`, and the characters XML does not allow, control characters and lone surrogates, shown
as their escapes: `\\x00`) with inline styles only: no script, no external CSS, nothing a notebook must trust. A value
longer than `LONGEST` characters (a long template, say) is cut, and says how long it was.

A *field table* is a label column and one or more value cells per row (`Row`: the label, then its cells); a row with
fewer cells than the header spans the rest. A *grid* is a plain table of records (the jobs of a run), cut to `limit`
rows with a last row saying how many more there are.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

Row = tuple[str, ...]

JOBS_SHOWN = 20  # jobs listed in a table before "... N more"
LONGEST = 500  # characters of a value shown in a table cell or a text field, then "... (N characters)"
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:12px;line-height:1.35"
_TABLE = "border-collapse:collapse;margin:2px 0 6px 0"
_CAPTION = "caption-side:top;text-align:left;font-weight:600;padding:0 0 3px 0"
_TH = "text-align:left;font-weight:normal;color:#555;padding:1px 14px 1px 0;white-space:nowrap;vertical-align:top"
_HEAD = "text-align:left;font-weight:600;color:#333;padding:1px 12px 1px 0;border-bottom:1px solid #ccc"
_TD = "padding:1px 12px 1px 0;vertical-align:top;text-align:left"
_NUM = "padding:1px 12px 1px 0;vertical-align:top;text-align:right;font-variant-numeric:tabular-nums"
_NUMERIC = re.compile(r"^[-+$]?[\d,.]+( ?%|[kMG]?)$")
# Not allowed in XML 1.0 (and a lone surrogate, from an undecodable file name, cannot even be sent to a notebook).
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def usd(value: float | None, unknown: str = "unknown") -> str:
    """Dollars as people read them: cents from a dollar up, else two significant digits (an embedding job costs
    fractions of a cent; `$0.0000` would say nothing). `unknown` when the value is None.

    >>> usd(1234.5), usd(0.25), usd(0.0123), usd(0.0000123), usd(0), usd(None)
    ('$1,234.50', '$0.25', '$0.012', '$0.000012', '$0.00', 'unknown')
    """
    if value is None:
        return unknown
    if value == 0 or not math.isfinite(value) or abs(value) >= 1:
        return f"${value:,.2f}"
    decimals = min(max(2, 1 - math.floor(math.log10(abs(value)))), 10)
    text = f"{value:.{decimals}f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def shorten(value: str, longest: int = LONGEST) -> str:
    """`value`, or its first `longest` characters and how long it was.

    >>> shorten("x" * 1000, 5)
    'xxxxx... (1,000 characters)'
    """
    return value if len(value) <= longest else f"{value[:longest]}... ({len(value):,} characters)"


def _escape(value: str) -> str:
    """`value` as XML text: markup escaped, and each character XML forbids as its escape (`\\x1b`)."""
    return html.escape(_NOT_XML.sub(lambda m: ascii(m.group())[1:-1], value))


def _cell(value: str, tag: str = "td", style: str | None = None, span: int = 1) -> str:
    style = style or (_NUM if _NUMERIC.match(value) else _TD)
    colspan = f' colspan="{span}"' if span > 1 else ""
    return f'<{tag} style="{style}"{colspan}>{_escape(shorten(value))}</{tag}>'


def html_fields(rows: Sequence[Row], header: Sequence[str] = (), caption: str = "") -> str:
    """A field table as HTML: each row's label in a `th`, its cells in `td`s (the last spanning what is left)."""
    width = max([len(header), *(len(r) - 1 for r in rows), 1])
    head = "<tr>" + _cell("", "th", _HEAD) + "".join(_cell(h, "th", _HEAD) for h in header) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + _cell(label, "th", _TH)
        + "".join(_cell(v, span=width - len(cells) + 1 if i == len(cells) - 1 else 1) for i, v in enumerate(cells))
        + "</tr>"
        for label, *cells in rows
    )  # fmt: skip
    top = f'<caption style="{_CAPTION}">{_escape(caption)}</caption>' if caption else ""
    return f'<table style="{_TABLE}">{top}{head}{body}</table>'


def html_grid(columns: Sequence[str], rows: Sequence[Row], caption: str = "", limit: int = JOBS_SHOWN,
              total: int | None = None) -> str:  # fmt: skip
    """Records as an HTML table under a header row; past `limit` rows (of `total`, by default all of `rows`), one
    last row says how many more there are."""
    head = "<tr>" + "".join(_cell(c, "th", _HEAD) for c in columns) + "</tr>"
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows[:limit])
    more = (len(rows) if total is None else total) - min(limit, len(rows))
    if more > 0:
        body += f'<tr><td style="{_TD};color:#777" colspan="{len(columns)}">... {more:,} more</td></tr>'
    top = f'<caption style="{_CAPTION}">{_escape(caption)}</caption>' if caption else ""
    return f'<table style="{_TABLE}">{top}{head}{body}</table>'


def html_block(title: str, *parts: str, notes: Sequence[str] = ()) -> str:
    """One report: a title line, then its parts (already HTML), then notes in grey, in a `div` of its own."""
    heading = f'<div style="font-weight:600;font-size:13px;margin-bottom:2px">{_escape(title)}</div>'
    tail = "".join(f'<div style="color:#666">{_escape(n)}</div>' for n in notes)
    return f'<div style="{_FONT}">{heading}{"".join(parts)}{tail}</div>'


def text_fields(rows: Sequence[Row], header: Sequence[str] = (), indent: str = "  ", width: int = 0) -> str:
    """A field table as aligned text: `label  cell header, cell header` per line (labels padded to `width` at
    least, to align with the lines of other tables: `text_sections`)."""
    if not rows:
        return ""
    width = max(width, *(len(r[0]) for r in rows))

    def cells(values: Sequence[str]) -> str:  # an empty cell is left out; a lone one needs no heading
        named = [f"{shorten(v)} {header[i]}" if i < len(header) and len(values) > 1 and header[i] else shorten(v)
                 for i, v in enumerate(values) if v]  # fmt: skip
        return ", ".join(named)

    return "\n".join(f"{indent}{label:<{width}}  {cells(values)}".rstrip() for label, *values in rows)


def text_sections(*sections: tuple[Sequence[Row], Sequence[str]], indent: str = "  ") -> str:
    """Several field tables (rows, header) as one block of text, their labels aligned together."""
    width = max((len(r[0]) for rows, _ in sections for r in rows), default=0)
    return "\n".join(text_fields(rows, header, indent, width) for rows, header in sections if rows)


def text_grid(columns: Sequence[str], rows: Sequence[Row], indent: str = "  ", limit: int = JOBS_SHOWN,
              total: int | None = None) -> str:  # fmt: skip
    """Records as aligned text columns under a header line; past `limit` rows (of `total`, by default all of
    `rows`), a last line says how many more there are."""
    shown = [tuple(columns), *rows[:limit]]
    widths = [max(len(r[i]) for r in shown) for i in range(len(columns))]
    lines = [indent + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in shown]
    more = (len(rows) if total is None else total) - len(shown) + 1
    if more > 0:
        lines.append(f"{indent}... {more:,} more")
    return "\n".join(lines)


def state_counts(states: Sequence[str]) -> str:
    """Job states as counts, in order of first appearance: "3 succeeded, 1 running"."""
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    return ", ".join(f"{n} {s.lower()}" for s, n in counts.items())


__all__ = [
    "Row",
    "html_block",
    "html_fields",
    "html_grid",
    "shorten",
    "state_counts",
    "text_fields",
    "text_grid",
    "text_sections",
    "usd",
]
