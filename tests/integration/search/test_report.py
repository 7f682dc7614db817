"""The compliance report: one self-contained HTML page with its charts inline."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.archive_builder import build_archive, reseal, segment_bytes, write_object
from helpers.cli import sealtrail

from sealtrail.reading import ArchiveSource
from sealtrail.report import bar_chart_svg, collect, render_html

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser")
                 if Path(p).exists()), None)


def charts(page: str) -> list[str]:
    """The SVG documents of the page's inline chart images."""
    found = re.findall(r'<img class="chart" id="[^"]+" alt="[^"]*" '
                       r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)">', page)
    return [base64.b64decode(f).decode() for f in found]


def test_report_page_is_self_contained_with_two_charts(tmp_path: Path) -> None:
    """`sealtrail report` writes a page with both charts inline, the rates, retention ahead,
    holds and an OK verdict per chain, fetching nothing from the network."""
    built = build_archive(tmp_path, chains=2, segments=3, records=6)
    out = tmp_path / "report.html"
    proc = sealtrail(tmp_path, "report", "--since", "2023-12-01", "--until", "2024-02-01",
                     "--out", out, "--archive", built.root, "--keys", built.keyring_path)
    assert proc.returncode == 0, proc.stderr
    page = " ".join(out.read_text().split())
    svgs = charts(page)
    assert len(svgs) == 2 and all(s.startswith("<svg") and "<rect" in s for s in svgs)
    assert "billing-api" in svgs[0] and "record.read" in svgs[1]
    assert "Rejection rate: <b>11.11%</b>" in page  # 2 rejections per chain of 18 entries
    assert "Redaction rate: <b>100.00%</b>" in page
    assert "all chains check out" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "") \
        and "<script" not in page
    assert "chain of custody NOT recorded (report" in proc.stderr


def test_report_marks_a_broken_chain_and_exits_1(tmp_path: Path) -> None:
    """A tampered segment makes the verdict BROKEN on the page and the exit code 1."""
    built = build_archive(tmp_path, chains=2, segments=2, records=4, rejections=())
    records = built.read_records(1, 0)
    records[1]["event"]["action"] = "delete"
    reseal(records, 1)
    write_object(built.segment_path(1, 0), segment_bytes(built.chain_ids[1], records))
    out = tmp_path / "r.html"
    proc = sealtrail(tmp_path, "report", "--out", out, "--archive", built.root, "--keys",
                     built.keyring_path)
    assert proc.returncode == 1
    page = out.read_text()
    assert "1 of 2 chains BROKEN" in page and built.chain_ids[1] in page


def test_empty_period_still_renders(tmp_path: Path) -> None:
    """A period with no events renders charts that say so."""
    built = build_archive(tmp_path, chains=1, segments=1, records=2)
    data = collect(ArchiveSource(built.store, built.keyring), 0, 1_000)
    page = render_html(data, generated_by="t")
    assert len(charts(page)) == 2 and "no events in the period" in charts(page)[0]
    assert "no events" in bar_chart_svg("x", {})


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install "
                    "chromium): the report is not rendered in a browser")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """Headless Chromium loads the page and its DOM holds both chart images, decoded."""
    built = build_archive(tmp_path, chains=1, segments=2, records=5)
    out = tmp_path / "report.html"
    assert sealtrail(tmp_path, "report", "--out", out, "--archive", built.root, "--keys",
                     built.keyring_path).returncode == 0
    assert CHROMIUM is not None
    shot = tmp_path / "shot.png"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*base, "--dump-dom", out.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count('class="chart"') == 2
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1100,1400", out.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists()
