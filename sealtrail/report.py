"""A compliance report for a period, as one self-contained HTML page.

The archive is read for the period (segments whose checkpoints cover it, checked by the
one verifier as ``verify`` checks them: checkpoint signatures, segment digests, entry
hashes and links, and, unless turned off, entry signatures), and the page shows: events
per day by service and by event type (charts: SVG images inlined as data: URIs, no
script, no network), rejection and redaction rates, retention expirations ahead, legal
holds, and the result of that verification per chain. Times are UTC; the period selects
on ``ingested_at``.
"""

from __future__ import annotations

import base64
import html
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sealtrail.archive import ArchiveError
from sealtrail.core.findings import Finding
from sealtrail.core.times import format_time
from sealtrail.verify import ArchiveReader

__all__ = ["ReportData", "bar_chart_svg", "collect", "render_html"]

PALETTE = ("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#d53f8c", "#319795", "#d69e2e",
           "#718096")


@dataclass
class ChainStatus:
    chain_id: str
    segments: int = 0
    entries: int = 0
    problem: Finding | None = None


@dataclass
class ReportData:
    """Everything the page shows, gathered from the archive."""

    archive: str
    since: int | None
    until: int | None
    by_service: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    by_type: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    entries_per_day: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    redacted_events: int = 0
    events: int = 0
    expirations: Counter[str] = field(default_factory=Counter)  # month -> objects
    holds: list[dict[str, Any]] = field(default_factory=list)
    chains: list[ChainStatus] = field(default_factory=list)
    signatures_checked: bool = True

    @property
    def entries(self) -> int:
        return self.events + sum(self.rejections.values())

    @property
    def rejection_rate(self) -> float:
        return sum(self.rejections.values()) / self.entries if self.entries else 0.0

    @property
    def redaction_rate(self) -> float:
        return self.redacted_events / self.events if self.events else 0.0


def _day(us: int) -> str:
    return datetime.fromtimestamp(us / 1_000_000, UTC).strftime("%Y-%m-%d")


def collect(source: ArchiveReader | object, since: int | None, until: int | None, *,
            now: datetime | None = None, expiry_months: int = 12) -> ReportData:
    """Read the period from the archive (verified) and count what the report shows.
    ``source``: an :class:`ArchiveReader` (or anything with one as ``reader``)."""
    reader: ArchiveReader = getattr(source, "reader", source)  # type: ignore[assignment]
    now = now or datetime.now(UTC)
    data = ReportData(reader.store.url, since, until,
                      signatures_checked=reader.entry_keyring is not None)
    horizon = now + timedelta(days=31 * expiry_months)
    for chain_id in reader.chain_ids():
        status = ChainStatus(chain_id)
        data.chains.append(status)
        plan = reader.plan(chain_id)
        if since is not None:
            plan.skip_before(since)
        for planned, seg in reader.segments(plan, want_records=True):
            status.entries += seg.entries
            if seg.finding is not None:
                break
            status.segments += 1
            for record in seg.records or []:
                at = record["ingested_at"]
                if (since is not None and at < since) or (until is not None and at >= until):
                    continue
                day = _day(at)
                data.entries_per_day[day] += 1
                event = record.get("event")
                if event is None:
                    data.rejections[(record.get("rejection") or {}).get("reason", "?")] += 1
                    continue
                data.events += 1
                data.by_service[day][event["origin"]["service"]] += 1
                data.by_type[day][event["event_type"]] += 1
                if record["redaction"]["fields"]:
                    data.redacted_events += 1
            if until is not None and planned.checkpoint.created_at > until + plan.skew_us:
                break  # every later segment was sealed after the period
        status.problem = plan.problem
        for signed in plan.checkpoints:
            key = signed.checkpoint.segment_key
            if not key:
                continue
            try:
                until_at = reader.store.retention(key).retain_until
            except (ArchiveError, ValueError, OSError):
                continue
            if now <= until_at <= horizon:
                data.expirations[until_at.strftime("%Y-%m")] += 1
    try:
        from sealtrail.governance.holds import list_holds

        data.holds = list_holds(source.store)
    except Exception:  # holds are optional in an archive; the page says none were found
        data.holds = []
    return data


def bar_chart_svg(title: str, series: dict[str, Counter[str]], *, width: int = 760,
                  height: int = 300) -> str:
    """A stacked bar chart as SVG text: x = the keys of ``series`` (sorted), stacks = the
    counters' keys (the 7 largest, the rest as "other")."""
    days = sorted(series)
    totals: Counter[str] = Counter()
    for counts in series.values():
        totals.update(counts)
    top = [name for name, _ in totals.most_common(len(PALETTE) - 1)]
    if len(totals) > len(top):
        top.append("other")
    colour = dict(zip(top, PALETTE, strict=False))
    left, right, top_m, bottom = 50, 170, 30, 40
    plot_w, plot_h = width - left - right, height - top_m - bottom
    peak = max((sum(c.values()) for c in series.values()), default=0) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{left}" y="18" font-size="14" font-weight="bold">{html.escape(title)}'
           '</text>',
           f'<line x1="{left}" y1="{top_m + plot_h}" x2="{left + plot_w}" '
           f'y2="{top_m + plot_h}" stroke="#333"/>',
           f'<text x="{left - 6}" y="{top_m + 4}" text-anchor="end">{peak}</text>',
           f'<text x="{left - 6}" y="{top_m + plot_h}" text-anchor="end">0</text>']
    slot = plot_w / max(len(days), 1)
    bar = min(max(slot * 0.7, 1.0), 48.0)
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar) / 2
        y = float(top_m + plot_h)
        counts = series[day]
        stacks = [(n, counts.get(n, 0)) for n in top if n != "other"]
        if "other" in colour:
            stacks.append(("other", sum(v for k, v in counts.items() if k not in colour)))
        for name, value in stacks:
            if not value:
                continue
            h = plot_h * value / peak
            y -= h
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                       f'fill="{colour[name]}"><title>{html.escape(day)} '
                       f'{html.escape(name)}: {value}</title></rect>')
        if len(days) <= 16 or i % max(len(days) // 8, 1) == 0:
            out.append(f'<text x="{x + bar / 2:.1f}" y="{top_m + plot_h + 14}" '
                       f'text-anchor="middle">{html.escape(day[5:])}</text>')
    for j, name in enumerate(top):
        y = top_m + 14 * j
        out.append(f'<rect x="{left + plot_w + 12}" y="{y}" width="10" height="10" '
                   f'fill="{colour[name]}"/>')
        out.append(f'<text x="{left + plot_w + 26}" y="{y + 9}">{html.escape(name[:24])}</text>')
    if not days:
        out.append(f'<text x="{left + plot_w / 2}" y="{top_m + plot_h / 2}" '
                   'text-anchor="middle">no events in the period</text>')
    out.append("</svg>")
    return "".join(out)


def _img(svg: str, alt: str, chart_id: str) -> str:
    encoded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return (f'<img class="chart" id="{chart_id}" alt="{html.escape(alt)}" '
            f'src="data:image/svg+xml;base64,{encoded}">')


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(data: ReportData, *, generated_by: str, now: datetime | None = None) -> str:
    """The report page: one HTML document, every chart an inline image."""
    now = now or datetime.now(UTC)
    period = (f"{format_time(data.since)} .. {format_time(data.until)}"
              if data.since is not None or data.until is not None else "everything archived")
    broken = [c for c in data.chains if c.problem is not None]
    verdict = ("all chains check out for the period" if data.chains and not broken
               else f"{len(broken)} of {len(data.chains)} chains BROKEN" if data.chains
               else "the archive holds no chains")
    chain_rows = [[c.chain_id, c.segments, c.entries,
                   "OK" if c.problem is None else f"BROKEN: {c.problem}"] for c in data.chains]
    rejection_rows = [[reason, n] for reason, n in data.rejections.most_common()]
    expiry_rows = [[month, n] for month, n in sorted(data.expirations.items())]
    hold_rows = [[h.get("case"), h.get("status"), h.get("objects"), h.get("operator"),
                  h.get("at")] for h in data.holds]
    sig = ("entry signatures checked" if data.signatures_checked
           else "entry signatures NOT checked (hash chain and checkpoint signatures only)")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>sealtrail audit report {html.escape(period)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #1a202c; max-width: 1000px; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #cbd5e0; padding: 4px 8px; text-align: left; font-size: 13px; }}
.ok {{ color: #276749; }} .bad {{ color: #c53030; font-weight: bold; }}
img.chart {{ display: block; margin: 1em 0; border: 1px solid #e2e8f0; }}
</style></head><body>
<h1>Audit report</h1>
<p>Period (ingestion time, UTC): <b>{html.escape(period)}</b>. Archive:
<code>{html.escape(data.archive)}</code>. Generated {html.escape(now.isoformat(timespec='seconds'))}
by {html.escape(generated_by)}.</p>
<p class="{'ok' if data.chains and not broken else 'bad'}" id="verdict">Verification while
reading: {html.escape(verdict)} ({html.escape(sig)}).</p>
<h2>Volume</h2>
<p>{data.events} events and {sum(data.rejections.values())} rejections in the period.</p>
{_img(bar_chart_svg("Events per day by service", data.by_service), "events per day by service",
      "chart-service")}
{_img(bar_chart_svg("Events per day by event type", data.by_type),
      "events per day by event type", "chart-type")}
<h2>Rejections and redaction</h2>
<p>Rejection rate: <b>{data.rejection_rate:.2%}</b> of {data.entries} entries. Redaction rate:
<b>{data.redaction_rate:.2%}</b> of events had at least one field redacted.</p>
{_table(["reason", "rejections"], rejection_rows) if rejection_rows else "<p>No rejections.</p>"}
<h2>Retention expirations ahead</h2>
{_table(["month (UTC)", "segments whose retention ends"], expiry_rows) if expiry_rows
 else "<p>No segment of these chains reaches the end of its retention in the next 12 months."
      "</p>"}
<h2>Legal holds</h2>
{_table(["case", "status", "objects", "last operator", "at"], hold_rows) if hold_rows
 else "<p>No legal hold has been recorded in this archive.</p>"}
<h2>Chains</h2>
{_table(["chain", "segments read", "entries checked", "result"], chain_rows)}
</body></html>
"""
