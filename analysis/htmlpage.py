"""The HTML page and table files of the reports (standard library only: no jinja2).

Figures are embedded as base64 PNG so ``report.html`` is self-contained; every table
shown is also written as CSV and Parquet next to it.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from string import Template

import pandas as pd

__all__ = ["page", "section", "write_table"]

_PAGE = Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; max-width: 70em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } .t, th:first-child { text-align: left; }
.note { color: #555; max-width: 70em; }
</style></head><body>
<h1>$title</h1>
<p class="note">$subtitle</p>
$body
</body></html>
""")


def section(title: str, figure: Path | None, caption: str, tables: list[pd.DataFrame]) -> str:
    """One report section: a heading, an embedded figure with its caption, and tables."""
    parts = [f"<h2>{html.escape(title)}</h2>"]
    if figure is not None:
        data = base64.b64encode(figure.read_bytes()).decode("ascii")
        parts.append(
            f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)} (file: figures/{html.escape(figure.name)})"
            "</figcaption></figure>"
        )
    elif caption:
        parts.append(f'<p class="note">{html.escape(caption)}</p>')
    parts.extend(_table(table) for table in tables)
    return "\n".join(parts)


def _table(frame: pd.DataFrame) -> str:
    """An HTML table: numbers right-aligned, text (names, errors) left-aligned, escaped."""
    text = [not pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    head = "".join(
        f'<th class="t">{html.escape(str(c))}</th>' if t else f"<th>{html.escape(str(c))}</th>"
        for c, t in zip(frame.columns, text, strict=True)
    )
    rows = []
    for values in frame.itertuples(index=False):
        cells = []
        for value, is_text in zip(values, text, strict=True):
            shown = _cell(value)
            cells.append(f'<td class="t">{shown}</td>' if is_text else f"<td>{shown}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return html.escape(_fmt(value))
    return html.escape(str(value))


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:,.4g}"


def write_table(frame: pd.DataFrame, out: Path, name: str) -> None:
    """Write ``out/name.csv`` and ``out/name.parquet`` (mixed-type columns as text)."""
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{name}.csv", index=False)
    try:
        frame.to_parquet(out / f"{name}.parquet", index=False)
    except (TypeError, ValueError):  # pyarrow's ArrowTypeError / ArrowInvalid: mixed objects
        mixed = {c: frame[c].astype(str) for c in frame.select_dtypes("object")}
        frame.assign(**mixed).to_parquet(out / f"{name}.parquet", index=False)


def page(out: Path, title: str, subtitle: str, sections: list[str]) -> Path:
    """Write ``out/report.html`` from its sections; returns its path."""
    text = _PAGE.substitute(
        title=html.escape(title), subtitle=html.escape(subtitle), body="\n".join(sections)
    )
    path = out / "report.html"
    path.write_text(text, encoding="utf-8")
    return path
