"""The report of ``nesy bench all``: one self-contained HTML page and the same in Markdown.

:func:`write_report` reads the results dict (``results.json``) and writes
``report.html`` (tables, and every figure inlined as base64 PNG/GIF or inline
SVG, so the one file can be mailed or opened anywhere) and ``report.md``
(tables in Markdown, figures linked relative to the output folder).  Tables
put our measured rows first and the papers' rows below them, marked as
measured on different data; every table names the command and seed that made
it.  The speed table gathers the rates every suite measured, beside the
machine's description.

The HTML helpers (:func:`html_page`, :func:`html_table`, :func:`html_image`) are
shared with the demo page (:mod:`benchmarks.demo`).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.table import cell
from physics.io import atomic_write_text

__all__ = ["write_report", "render_html", "render_markdown", "html_page", "html_table", "html_image", "md_table"]

MIME = {".png": "image/png", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
PUBLISHED_MARK = "†"
STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; white-space: nowrap; }
td.code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85em; word-break: break-word; }
td.long { min-width: 16em; }
tr.published td { color: #666; font-style: italic; background: #fafafa; }
.meta { color: #555; font-size: .85em; margin: .2em 0; }
code { background: #f4f4f4; padding: 0 .2em; font-size: .9em; word-break: break-all; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figcaption { font-size: .85em; color: #444; max-width: 640px; }
img { max-width: 100%; border: 1px solid #ddd; }
.skipped { color: #8a6d3b; } .failed { color: #a94442; } .ok { color: #3c763d; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: .85em; }
"""


# ---------------------------------------------------------------------------- HTML helpers
def _esc(value: Any) -> str:
    return html.escape(value if isinstance(value, str) else cell(value))


NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?\s*%?$|^-$", re.IGNORECASE)


def _td(value: Any) -> str:
    """A table cell: numbers right-aligned, programs (``f(g(...))``) in monospace, text left."""
    text = value if isinstance(value, str) else cell(value)
    if NUMBER.match(text.strip()):
        return f'<td class="num">{html.escape(text)}</td>'
    if "(" in text and text.endswith(")") and " " not in text.split("(", 1)[0]:
        return f'<td class="code">{html.escape(text)}</td>'
    if len(text) > 40:  # a sentence (a question): keep it readable beside a long program
        return f'<td class="long">{html.escape(text)}</td>'
    return f"<td>{html.escape(text)}</td>"


def html_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], published: Sequence[Sequence[Any]] = ()) -> str:
    """An HTML table; ``published`` rows come last, greyed and marked with a dagger."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
    for row in published:
        cells = [f"{PUBLISHED_MARK} {row[0]}", *row[1:]] if row else []
        body += '<tr class="published">' + "".join(_td(v) for v in cells) + "</tr>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def html_image(path: Path, alt: str, caption: str | None = None) -> str:
    """A figure with the file inlined: PNG/GIF/JPEG as a base64 data URI, SVG as markup."""
    path = Path(path)
    if path.suffix.lower() == ".svg":
        body = path.read_text()
    else:
        mime = MIME.get(path.suffix.lower(), "application/octet-stream")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        body = f'<img src="data:{mime};base64,{data}" alt="{html.escape(alt)}">'
    caption_html = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f"<figure>{body}{caption_html}</figure>"


def html_page(title: str, body: str) -> str:
    """A complete HTML document (inline style, no external resources)."""
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def md_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], published: Sequence[Sequence[Any]] = ()) -> str:
    """A Markdown table; ``published`` rows come last, in italics and marked with a dagger."""

    def fmt(v: Any) -> str:
        return (v if isinstance(v, str) else cell(v)).replace("|", "\\|")

    lines = ["| " + " | ".join(fmt(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    for row in published:
        cells = [f"{PUBLISHED_MARK} {row[0]}", *row[1:]]
        lines.append("| " + " | ".join(f"*{fmt(v)}*" if fmt(v) else "" for v in cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the report
def _groups(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in results["suites"].values():
        groups.setdefault(record.get("group") or "Other", []).append(record)
    return groups


def _status(record: dict[str, Any]) -> str:
    if record["status"] == "skipped":
        return f"skipped: {record['reason']}"
    if record["status"] == "failed":
        return f"failed: {record['error']}"
    return f"ok ({record['seconds']} s{', kept from an earlier run' if record.get('kept') else ''})"


def _speed_rows(results: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for record in results["suites"].values():
        if record["status"] != "ok":
            continue
        for what, rate, unit, note in record["result"].get("speed", []):
            rows.append([what, f"{rate:,.1f}" if rate < 1000 else f"{rate:,.0f}", unit, record["suite"], note])
    return rows


def _machine_line(machine: dict[str, Any]) -> str:
    parts = [f"{machine.get('cpu')}", f"{machine.get('cores')} cores ({machine.get('cores_usable')} usable)",
             f"{machine.get('memory')} memory", f"load average {machine.get('load_average_1min')} at the start",
             f"{machine.get('platform')}", f"Python {machine.get('python')}", f"torch {machine.get('torch')}"]
    if machine.get("gpu"):
        parts.append(f"GPU {machine['gpu']}")
    return "; ".join(str(p) for p in parts)


SPEED_HEADER = ("what", "rate", "unit", "suite", "note")
DATA_NOTE = (f"Rows marked {PUBLISHED_MARK} are the papers' published figures, measured on the official data sets, "
             "not on the data generated for this run: they show where the published systems stand, "
             "not a like-for-like comparison.")


def _intro(results: dict[str, Any]) -> tuple[str, list[list[Any]]]:
    kind = "quick" if results["quick"] else "full"
    text = (f"A {kind} run of every registered benchmark suite, started {results['started']}, "
            f"{results.get('seconds', '?')} s in all on {results['workers']} worker(s), "
            f"{results['threads_per_suite']} torch thread(s) per suite.")
    if results["quick"]:
        text += (" Quick settings measure small samples (a few scenes, trajectories and episodes per suite): "
                 "they show that every part runs and give a first look; the figures move with the sample, "
                 "so read the intervals.")
    rows = [[name, r.get("group", ""), _status(r)] for name, r in results["suites"].items()]
    return text, rows


def render_html(results: dict[str, Any], root: Path) -> str:
    """The self-contained report page; figure paths are read under ``root/suites/<suite>/``."""
    text, status_rows = _intro(results)
    parts = ["<h1>nesy-physics benchmark report</h1>",
             f"<p>{html.escape(text)}</p>",
             f"<p class=\"meta\">command: <code>{html.escape(results['command'])}</code></p>",
             f"<p class=\"meta\">machine: {html.escape(_machine_line(results['machine']))}</p>",
             f"<p class=\"meta\">{html.escape(DATA_NOTE)}</p>",
             "<h2>Suites</h2>", html_table(["suite", "group", "status"], status_rows)]
    for group, records in _groups(results).items():
        parts.append(f"<h2>{html.escape(group)}</h2>")
        for record in records:
            status_class = record["status"]
            parts.append(f"<h3>{html.escape(record['suite'])}: <span class=\"{status_class}\">"
                         f"{html.escape(_status(record))}</span></h3>")
            if record.get("help"):
                parts.append(f"<p class=\"meta\">{html.escape(record['help'])}</p>")
            if record["status"] != "ok":
                continue
            result = record["result"]
            for t in result.get("tables", []):
                parts.append(f"<p><b>{html.escape(t['title'])}</b></p>")
                if t["rows"] or t["published"]:
                    parts.append(html_table(t["header"], t["rows"], t["published"]))
                meta = [f"command: <code>{html.escape(t['command'])}</code>", f"seed: {html.escape(str(t['seed']))}"]
                if t["published"]:
                    meta.append(f"{PUBLISHED_MARK} {html.escape(t['source'])}: published, measured on different data")
                if t.get("note"):
                    meta.append(html.escape(t["note"]))
                parts += [f"<p class=\"meta\">{m}</p>" for m in meta]
            for f in result.get("figures", []):
                path = root / "suites" / record["suite"] / f["path"]
                if path.is_file():
                    parts.append(html_image(path, f["title"], f["title"]))
    speed = _speed_rows(results)
    parts.append("<h2>Speed, side by side</h2>")
    parts.append(f"<p class=\"meta\">machine: {html.escape(_machine_line(results['machine']))}; "
                 f"measured in this run ({html.escape(results['command'])}), one suite per worker; on a shared "
                 "machine the rates move with its load.</p>")
    if speed:
        parts.append(html_table(SPEED_HEADER, speed))
    else:
        parts.append("<p>No suite measured a rate in this run.</p>")
    return html_page("nesy-physics benchmark report", "\n".join(parts))


def render_markdown(results: dict[str, Any], root: Path) -> str:
    """The report in Markdown; figures are linked relative to ``root`` (the output folder)."""
    text, status_rows = _intro(results)
    lines = ["# nesy-physics benchmark report", "", text, "",
             f"Command: `{results['command']}`", "", f"Machine: {_machine_line(results['machine'])}", "",
             DATA_NOTE, "", "## Suites", "", md_table(["suite", "group", "status"], status_rows)]
    for group, records in _groups(results).items():
        lines += ["", f"## {group}"]
        for record in records:
            lines += ["", f"### {record['suite']}: {_status(record)}"]
            if record["status"] != "ok":
                continue
            result = record["result"]
            for t in result.get("tables", []):
                lines += ["", f"**{t['title']}**", ""]
                if t["rows"] or t["published"]:
                    lines += [md_table(t["header"], t["rows"], t["published"]), ""]
                lines.append(f"Command: `{t['command']}`; seed {t['seed']}.")
                if t["published"]:
                    lines.append(f"{PUBLISHED_MARK} {t['source']}: published, measured on different data.")
                if t.get("note"):
                    lines.append(t["note"])
            for f in result.get("figures", []):
                rel = Path("suites") / record["suite"] / f["path"]
                if (root / rel).is_file():
                    lines += ["", f"![{f['title']}]({rel.as_posix()})"]
    lines += ["", "## Speed, side by side", "", f"Machine: {_machine_line(results['machine'])}.", ""]
    speed = _speed_rows(results)
    lines.append(md_table(SPEED_HEADER, speed) if speed else "No suite measured a rate in this run.")
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md``; returns their paths."""
    out = Path(out)
    html_path, md_path = out / "report.html", out / "report.md"
    atomic_write_text(html_path, render_html(results, out))
    atomic_write_text(md_path, render_markdown(results, out))
    return html_path, md_path
