"""The preview as a browser draws it: headless Chromium (Debian's chromium package) takes a
screenshot of each locale's digest, and the test looks at the pixels: a white card on a grey
page, text down its length, the red of a missed target and the green of a met one in the trend
bars. Skipped where /usr/bin/chromium is absent."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from test_digest_render import fixed_context

from slamon.digest import render

CHROMIUM = Path("/usr/bin/chromium")
HEIGHT = 1100
#: Gmail's reading pane and a phone.
WIDTHS = (640, 390)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium")


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, interlace) == (8, 0) and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b, c = prev[i], prev[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        rows.append(
            bytes(line)
            if channels == 3
            else bytes(v for px in range(width) for v in line[px * 4 : px * 4 + 3])
        )
    return width, height, rows


def pixel(row: bytes, x: int) -> tuple[int, int, int]:
    return row[3 * x], row[3 * x + 1], row[3 * x + 2]


def near(colour: tuple[int, int, int], target: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, target, strict=True))


def screenshot(html: str, tmp_path: Path, width: int) -> bytes:
    page = tmp_path / "digest.html"
    page.write_text(html, encoding="utf-8")
    png = tmp_path / "digest.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},{HEIGHT}",
            f"--screenshot={png}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return png.read_bytes()


@pytest.mark.parametrize("locale", ["en", "ru"])
@pytest.mark.parametrize("window", WIDTHS)
def test_the_preview_draws_a_one_screen_summary(locale: str, window: int, tmp_path: Path) -> None:
    html = render(fixed_context(locale)).html
    width, height, rows = decode_png(screenshot(html, tmp_path, window))
    assert (width, height) == (window, HEIGHT)

    page = (243, 244, 246)
    assert near(pixel(rows[2], 2), page, 4)  # the grey page around the card
    middle = width // 2
    card = [y for y in range(height) if pixel(rows[y], middle) != page]
    assert card and card[0] < 40 and len(card) > 0.9 * (height - card[0])  # card to the fold

    # Text (#1f2328, grey #57606a): rows with ink all the way down the first screen.
    inked = [
        y
        for y, row in enumerate(rows)
        if any(sum(pixel(row, x)) < 400 for x in range(30, width - 30, 3))
    ]
    assert len(inked) > 0.35 * height
    assert inked[0] < 60 and inked[-1] > height - 150

    # The headline and trend: the red of a missed target and the green of a met one.
    red, green = (198, 40, 40), (26, 127, 55)
    colours = {pixel(row, x) for row in rows[: height // 2 + 300] for x in range(0, width, 2)}
    assert any(near(c, red) for c in colours)
    assert any(near(c, green) for c in colours)
    # Nothing wider than the window: the grey page shows at the right edge all the way down
    # (a table that does not fit would push the card past it).
    assert all(pixel(row, width - 1) == page for row in rows[::5])
