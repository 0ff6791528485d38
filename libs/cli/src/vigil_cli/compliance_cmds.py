"""`vigil compliance report`: the AUD-3 report as JSON, or as one self-contained printable HTML page.

The page has no external reference at all (no scripts, fonts, styles or images from elsewhere): styles
are inline, charts are inline SVG (coverage per place category, footage access per department over
time), and every finding's section lists the audit record ids `vigil audit prove` checks.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from google.protobuf import json_format

from vigil.audit.v1 import compliance_service_pb2 as pb
from vigil.audit.v1 import compliance_service_pb2_grpc
from vigil.common.v1 import time_range_pb2
from vigil_cli.output import fail, parse_time, run, to_timestamp
from vigil_cli.session import session

# Reading a month of a large log and asking the archive about every device takes a while.
REPORT_TIMEOUT_S = 300.0

compliance_app = typer.Typer(
    name="compliance",
    help="Compliance reports for the supervisor and the auditor (AUD-3).",
    no_args_is_help=True,
)


def report_json(report: pb.ComplianceReport) -> str:
    return json_format.MessageToJson(report, preserving_proto_field_name=True, indent=2, ensure_ascii=False)


@compliance_app.command(help="Fetch the compliance report over a range and write it as JSON or HTML.")
def report(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    from_: Annotated[
        str | None, typer.Option("--from", help="RFC 3339 start (default: 30 days before --to).")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="RFC 3339 end (default: now).")] = None,
    format_: Annotated[str, typer.Option("--format", help="json or html.")] = "json",
) -> None:
    if format_ not in ("json", "html"):
        raise typer.BadParameter("--format must be json or html")
    window = time_range_pb2.TimeRange()
    if from_ is not None:
        window.start_time.CopyFrom(to_timestamp(parse_time(from_)))
    if to is not None:
        window.end_time.CopyFrom(to_timestamp(parse_time(to)))
    s = session(ctx)

    async def body() -> pb.ComplianceReport:
        async with s.channel("audit") as channel:
            stub = compliance_service_pb2_grpc.ComplianceServiceStub(channel)
            return await stub.GetComplianceReport(
                pb.GetComplianceReportRequest(range=window), timeout=REPORT_TIMEOUT_S
            )

    found = run(body())
    text = report_json(found) if format_ == "json" else render_html(found)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        fail(f"cannot write {output}: {e}")
    typer.echo(
        f"{len(found.findings)} findings over {_when(found.range.start_time)} .. "
        f"{_when(found.range.end_time)} written to {output}"
    )


# ------------------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:sans-serif;margin:2em;color:#222;max-width:60em}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #999;margin-top:1.5em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #bbb;padding:.2em .5em;text-align:left}
.CRITICAL{color:#a00;font-weight:bold}.WARNING{color:#a60}.INFO{color:#555}
code{font-size:.85em}.note{color:#a00}
section{page-break-inside:avoid}
"""
_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(ts: Any) -> str:
    if not ts.seconds and not ts.nanos:
        return "-"
    return ts.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _kind(value: int) -> str:
    return pb.FindingKind.Name(value).removeprefix("FINDING_KIND_")


def _coverage_svg(report: pb.ComplianceReport) -> str:
    rows = list(report.coverage)
    if not rows:
        return "<p>No coverage was read.</p>"
    bar, left, width = 22, 260, 300
    height = bar * len(rows) + 30
    parts = [f'<svg width="{left + width + 80}" height="{height}" role="img">']
    for i, c in enumerate(rows):
        y = 10 + i * bar
        w = max(0.0, min(100.0, c.percent_covered)) / 100 * width
        label = c.place_category.removeprefix("PLACE_CATEGORY_")
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" font-size="12">{_e(label)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{width}" height="{bar - 6}" fill="#eee"/>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{bar - 6}" fill="#4e79a7"/>')
        parts.append(
            f'<text x="{left + width + 6}" y="{y + 15}" font-size="12">{c.percent_covered:.1f}%</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _access_svg(report: pb.ComplianceReport) -> str:
    series = list(report.access)
    buckets = list(report.access_buckets)
    if not series or not buckets:
        return "<p>No footage was accessed in the range.</p>"
    w, h, pad = 640, 220, 40
    top = max(max(s.counts) for s in series) or 1
    step = (w - 2 * pad) / max(1, len(buckets) - 1)
    parts = [f'<svg width="{w + 260}" height="{h + 40}" role="img">']
    parts.append(f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>')
    parts.append(f'<line x1="{pad}" y1="{pad / 2}" x2="{pad}" y2="{h - pad}" stroke="#333"/>')
    parts.append(f'<text x="{pad - 4}" y="{pad / 2 + 4}" text-anchor="end" font-size="11">{top}</text>')
    parts.append(f'<text x="{pad}" y="{h - pad + 16}" font-size="11">{_e(_when(buckets[0]))}</text>')
    parts.append(
        f'<text x="{w - pad}" y="{h - pad + 16}" text-anchor="end" font-size="11">{_e(_when(buckets[-1]))}</text>'
    )
    for i, s in enumerate(series):
        color = _PALETTE[i % len(_PALETTE)]
        points = " ".join(
            f"{pad + j * step:.1f},{h - pad - (n / top) * (h - 1.5 * pad):.1f}"
            for j, n in enumerate(s.counts)
        )
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>')
        parts.append(f'<rect x="{w + 10}" y="{20 + i * 18}" width="12" height="12" fill="{color}"/>')
        parts.append(
            f'<text x="{w + 28}" y="{31 + i * 18}" font-size="12">{_e(s.unit)} ({sum(s.counts)})</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: pb.ComplianceReport) -> str:
    """The report as one printable page with no external reference."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Vigil compliance report</title>',
        f"<style>{_CSS}</style></head><body>",
        "<h1>Vigil compliance report</h1>",
        f"<p>Range {_e(_when(report.range.start_time))} to {_e(_when(report.range.end_time))}; generated "
        f"{_e(_when(report.generate_time))}; {report.records_scanned} audit records read of a log of "
        f"{report.log_size}; {report.device_count} devices ({report.active_device_count} active) at "
        f"{report.site_count} sites.</p>",
    ]
    for note in report.notes:
        out.append(f'<p class="note">Incomplete: {_e(note)}</p>')
    out.append('<h2 id="summary">Summary</h2>')
    if report.counts:
        out.append("<table><tr><th>Finding</th><th>Rule</th><th>Count</th></tr>")
        for c in report.counts:
            k = _kind(c.kind)
            out.append(
                f'<tr><td><a href="#{_e(k)}">{_e(k)}</a></td><td>{_e(c.rule_id)}</td><td>{c.count}</td></tr>'
            )
        out.append("</table>")
    else:
        out.append("<p>No findings.</p>")
    out.append("<h2>Coverage per place category (ARC-5)</h2>")
    out.append(_coverage_svg(report))
    out.append("<h2>Footage access per department over time (ACC-1)</h2>")
    out.append(_access_svg(report))
    by_kind: dict[str, list[pb.Finding]] = {}
    for f in report.findings:
        by_kind.setdefault(_kind(f.kind), []).append(f)
    for kind, items in by_kind.items():
        out.append(f'<section id="{_e(kind)}"><h2>{_e(kind)} ({_e(items[0].rule_id)}): {len(items)}</h2>')
        for f in items:
            severity = pb.Severity.Name(f.severity).removeprefix("SEVERITY_")
            out.append(
                f'<h3 class="{_e(severity)}">{_e(severity)}: {_e(f.summary)}</h3>'
                f"<p>{_e(f.subject_kind)}: {_e(', '.join(f.subject_ids))}; count {f.count}; "
                f"from {_e(_when(f.first_time))} to {_e(_when(f.last_time))}</p>"
            )
            if f.evidence_record_ids:
                out.append("<p>Evidence (check each with <code>vigil audit prove RECORD_ID</code>):</p><ul>")
                out.extend(f"<li><code>{_e(r)}</code></li>" for r in f.evidence_record_ids)
                out.append("</ul>")
            else:
                out.append("<p>No audit record names this subject.</p>")
        out.append("</section>")
    out.append(f"<p>Printed from Vigil on {_e(datetime.now(UTC).date().isoformat())}.</p></body></html>")
    return "\n".join(out)
