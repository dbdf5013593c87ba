"""QR codes as inline SVG for printed documents (回执): pure Python (segno), no image files, no network."""

from __future__ import annotations

from html import escape

from markupsafe import Markup

MAX_QR_TEXT = 500  # a receipt URL is ~80 characters; refuse to draw anything that is not a short reference


def qr_svg(text: str, *, scale: int = 3, border: int = 2, label: str = "") -> Markup:
    """``text`` as an inline ``<svg>`` QR code, safe to drop into a Jinja template unescaped.

    Error correction is at least M (segno boosts it when the symbol has room), so a
    creased or smudged paper receipt still scans. ``label`` becomes the accessible
    name (``aria-label``) and the ``<title>`` shown on hover.
    """
    if not text:
        raise ValueError("a QR code needs some text to encode")
    if len(text) > MAX_QR_TEXT:
        raise ValueError(f"QR text is {len(text)} characters; the limit is {MAX_QR_TEXT}")
    if not 1 <= scale <= 20 or not 0 <= border <= 10:
        raise ValueError("QR scale runs from 1 to 20 and the border from 0 to 10 modules")
    import segno  # loaded with the first receipt printed, not by every node at start (issue 16's footprint)

    code = segno.make(text, error="m", micro=False)
    title = label or text
    svg: str = code.svg_inline(scale=scale, border=border, title=title, svgclass="qr", lineclass=None)
    # segno escapes the title itself; the attribute we add is escaped here.
    svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(title, quote=True)}" ', 1)
    return Markup(svg)
