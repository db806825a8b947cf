"""The HTML outcome report, rendered by headless Chromium; the screenshot is kept.

The page is rendered from the scripted scenario of test_outcomes.py, opened in Debian's
`chromium` (offline: file://, no network features), and screenshotted to
test-artifacts/report.png (git-ignored) next to the page itself, test-artifacts/report.html.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.audit.repository import (
    OutcomeReport,
    PostgresAuditRepository,
    PostgresOutcomeStore,
    connect_pool,
)
from services.cli.report_html import MODE_COLORS, render_html
from tests.conftest import ENV
from tests.integration.test_outcomes import SINCE, UNTIL, scenario_rows

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
GENERATED_AT = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
HEADER_NAVY = bytes.fromhex("1f2a44")


@pytest.fixture
async def scenario_report(audit_database: str) -> AsyncIterator[OutcomeReport]:
    """The scenario's report with every grouping and a daily timeline."""
    pool = await connect_pool(audit_database, min_size=1, max_size=1)
    try:
        await PostgresAuditRepository(pool).insert(scenario_rows())
        yield await PostgresOutcomeStore(pool).report(
            SINCE, UNTIL, groupings=("category", "model", "policy"), bucket=timedelta(days=1)
        )
    finally:
        await pool.close()


def chromium() -> str:
    """Return the Chromium executable; fail in CI and skip elsewhere when it is missing."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "no chromium: apt-get install chromium (make test installs it as root)"
        if ENV.ci:
            pytest.fail(message)
        pytest.skip(message)
    return found


def screenshot(page: Path, png: Path) -> None:
    """Render `page` in headless Chromium at 1400x1800 into `png`."""
    with tempfile.TemporaryDirectory(prefix="tf-chromium-") as profile:
        subprocess.run(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--screenshot={png}",
                "--window-size=1400,1800",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def png_rows(png: Path, *, rows: int) -> tuple[int, int, list[bytes]]:
    """Return width, pixel size and the first `rows` RGB(A) rows of an 8-bit PNG (stdlib only)."""
    data, position, idat = png.read_bytes(), 8, []
    width = height = pixel = 0
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8, f"{depth}-bit PNG"
            pixel = {2: 3, 6: 4}[color]
        elif kind == b"IDAT":
            idat.append(body)
        position += 12 + length
    raw = zlib.decompressobj().decompress(b"".join(idat), (width * pixel + 1) * rows)
    stride, previous, decoded = width * pixel, bytes(width * pixel), []
    for y in range(min(rows, height)):
        start = y * (stride + 1)
        line = _unfilter(
            raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, pixel
        )
        decoded.append(line)
        previous = line
    return width, pixel, decoded


def _unfilter(kind: int, line: bytearray, above: bytes, pixel: int) -> bytes:
    if kind == 2:  # Up, the most common: add the row above, byte-wise, all at once (SWAR)
        size = len(line)
        a, b = int.from_bytes(line, "big"), int.from_bytes(above, "big")
        low, high = int.from_bytes(b"\x7f" * size, "big"), int.from_bytes(b"\x80" * size, "big")
        return (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(size, "big")
    for i in range(len(line) if kind else 0):
        left = line[i - pixel] if i >= pixel else 0
        if kind == 1:
            line[i] = (line[i] + left) & 255
        elif kind == 3:
            line[i] = (line[i] + ((left + above[i]) >> 1)) & 255
        elif kind == 4:
            corner = above[i - pixel] if i >= pixel else 0
            guess = left + above[i] - corner
            # The nearest of left, above, corner to the guess; ties in that order.
            candidates = [(abs(guess - value), rank, value) for rank, value in
                          enumerate((left, above[i], corner))]  # fmt: skip
            nearest = min(candidates)[2]
            line[i] = (line[i] + nearest) & 255
    return bytes(line)


def test_png_decoder_undoes_every_scanline_filter() -> None:
    # A 2x5 RGB image: rows filtered None, Up, Sub, Paeth, Average (worked out by hand).
    expected = [
        bytes([10, 20, 30, 40, 50, 60]),
        bytes([11, 22, 33, 255, 0, 1]),
        bytes([5, 6, 7, 8, 9, 10]),
        bytes([200, 100, 50, 0, 0, 0]),
        bytes([1, 2, 3, 4, 5, 6]),
    ]
    filtered = [
        (0, [10, 20, 30, 40, 50, 60]),
        (2, [1, 2, 3, 215, 206, 197]),
        (1, [5, 6, 7, 3, 3, 3]),
        (4, [195, 94, 43, 56, 156, 206]),
        (3, [157, 208, 234, 4, 4, 5]),
    ]
    raw = b"".join(bytes([kind, *line]) for kind, line in filtered)
    ihdr = struct.pack(">IIBBBBB", 2, len(expected), 8, 2, 0, 0, 0)
    chunks = ((b"IHDR", ihdr), (b"IDAT", zlib.compress(raw)), (b"IEND", b""))
    png = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(body)) + kind + body + b"\0\0\0\0" for kind, body in chunks
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.png"
        path.write_bytes(png)
        assert png_rows(path, rows=5) == (2, 3, expected)


async def test_the_report_page_renders_in_headless_chromium_with_its_charts(
    scenario_report: OutcomeReport,
) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page, png = ARTIFACTS / "report.html", ARTIFACTS / "report.png"
    png.unlink(missing_ok=True)
    page.write_text(render_html(scenario_report, generated_at=GENERATED_AT), encoding="utf-8")

    await asyncio.to_thread(screenshot, page, png)

    assert png.stat().st_size > 50_000  # a blank 1400x1800 page is a few kB
    width, pixel, rows = png_rows(png, rows=900)
    assert width == 1400
    colours = {row[x * pixel : x * pixel + 3] for row in rows[::10] for x in range(0, width, 10)}
    assert len(colours) > 20
    assert rows[20][20 * pixel : 20 * pixel + 3] == HEADER_NAVY
    # The stacked bars of the mode mix are drawn in the autonomous colour.
    teal = bytes.fromhex(MODE_COLORS["autonomous"].removeprefix("#"))
    assert any(teal in row for row in rows[300:])


async def test_the_report_page_carries_the_scenarios_figures_and_needs_no_network(
    scenario_report: OutcomeReport,
) -> None:
    html = render_html(scenario_report, generated_at=GENERATED_AT)

    for figure in (
        "2026-11-23 00:00 → 2026-11-25 00:00 UTC",
        ">10<",  # decisions
        ">60%<",  # automation rate
        "2 of 5 judged autonomous decisions correct",
        ">22%<",  # override rate of judged decisions
        "2 of 9 judged decisions; 20% of all",
        "3.6<small> / 5</small>",
        "2 negative reactions, 1 re-routed to a human",
        ">51 min<",
        "2 dead letters per 11 inbound messages",
        "tfidf-lr@m1",
        "default@2",
        "sha256 sha-of-polic, approved by ops-lead",
        "33%<span class=n>1/3</span>",  # billing autonomous precision
        "50%<span class=n>1/2</span>",  # shipping autonomous precision
    ):
        assert figure in html, figure
    assert html.count("<svg") >= 3 + 2 + 2 + 2  # three charts, a mix bar per group row
    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
