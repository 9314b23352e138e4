"""The picture as a file: a standalone SVG document, and an HTML page around it.

The same picture the terminal draws (procmap.render.diagram), with the same
words: high addresses at the top, one box per band, its start address on the
left at its bottom edge, its size and what it is on the right.  A box's height
grows with the logarithm of its size (capped, so the kernel's 128 TiB does not
push everything else off the page); gaps, the hole and the NULL page are short
breaks with dashed sides and torn edges, not drawn to scale.  Each kind has its
colour as a light tint and a pattern of its own, the diagram's fill characters
drawn as lines, so the picture still reads when printed in grey.

Self-contained: no fonts, images, scripts or links from anywhere, so the file
can be mailed, printed or opened years later.  Every string from the process
(labels, paths, sections, the title) goes through printable() and then XML
escaping, so a path holding "<", "]]>", an ESC or a stray byte is shown as
literal text and the document always parses.
"""

from __future__ import annotations

import html
from xml.sax.saxutils import escape, quoteattr

from ..views.picture import Band, Picture, fold, weight
from .diagram import band_address, band_label, band_lines, kind_cells, legend_items
from .text import human_size, printable
from .theme import KIND_COLOURS

__all__ = ["render_html", "render_svg"]

# --- the layout, in px -----------------------------------------------------------------

WIDTH = 960
MARGIN = 24
ADDRESS_RIGHT = 150  # addresses end here, right-aligned
BOX_X = 162
BOX_WIDTH = 280
BOX_RIGHT = BOX_X + BOX_WIDTH
SIZE_RIGHT = 522  # sizes end here, right-aligned
WORDS_X = 538  # the band's lines start here
WORDS_WIDTH = WIDTH - MARGIN - WORDS_X

MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
SANS = "DejaVu Sans, Helvetica, Arial, sans-serif"
INK = "#1a1a1a"  # text
MUTED = "#555555"  # secondary text: still dark enough to print
EDGE = "#37474f"  # box borders
BREAK = "#8a8a8a"  # the sides and edges of breaks

# Glyph widths as fractions of the font size, to fit text without the font at
# hand: DejaVu Sans's (Pillow's getlength), rounded up, the widest of SANS's fonts,
# so what fits in DejaVu fits in the others.  Bold is an eighth wider.
_NARROW = frozenset("ijlI'.,:;|/\\ !")
_SEMI = frozenset('frt()[]{}-"*_?')
_WIDE = frozenset("mwMW@%…")
_BOLD = 1.12


def _em(ch: str) -> float:
    if ch in _NARROW:
        return 0.32
    if ch in _SEMI:
        return 0.52
    if ch in _WIDE or not ch.isascii():
        return 1.0
    if ch.isupper():
        return 0.79
    if ch.isalnum():
        return 0.64
    return 0.84  # + = < > # ~ &


def _width(s: str, size: float, bold: bool = False) -> float:
    """About how wide `s` is drawn in SANS at `size` px: a little more, never less."""
    return sum(_em(ch) for ch in s) * size * (_BOLD if bold else 1.0)


# Box heights: 24 px, and 16 more for every 16 times a page (weight), only 5 more
# past 4 (1 GiB), so 128 TiB is twice 1 MiB, not four times.  Breaks are short.
_BASE, _STEP, _KNEE, _PAST_KNEE = 24, 16, 4.0, 5
_EMPTY_HEIGHT = 30
_HOLE_HEIGHT = 34
_PLANNED_HEIGHT = 34
_LINE = 13.5  # from one line of words to the next


def band_height(band: Band) -> int:
    """How tall a band's box is drawn, in px."""
    if band.role == "hole":
        return _HOLE_HEIGHT
    if band.empty:
        return _EMPTY_HEIGHT
    if band.role == "planned":
        return _PLANNED_HEIGHT
    w = weight(band)
    return round(_BASE + _STEP * min(w, _KNEE) + _PAST_KNEE * max(w - _KNEE, 0))


# --- colours and fills ----------------------------------------------------------------------


def _mix(colour: str, white: float) -> str:
    """`colour` mixed with `white` parts of white (0: as it is, 1: white)."""
    rgb = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * white):02x}" for c in rgb)


def _colour(kind: str | None) -> str:
    return KIND_COLOURS.get(kind or "", "#757575")


# Each kind's pattern, mirroring the diagram's FILLS: (tile size, marks), the marks
# drawn in the kind's colour over its tint.  Text is solid (a deeper tint, no marks);
# rodata a dense hatch; data a cross-hatch; bss dots; the heap's and the stack's
# diagonals lean the way they grow; mmap dashes; the kernel crosses.
_PATTERNS = {
    "text": ((8, 8), ""),
    "rodata": ((4, 4), '<path d="M2 0V4" stroke-width="1.3"/>'),
    "data": ((8, 8), '<path d="M0 4H8M4 0V8" stroke-width="1"/>'),
    "bss": ((7, 7), '<circle cx="3.5" cy="3.5" r="1.2" stroke="none"/>'),
    "heap": ((8, 8), '<path d="M0 8L8 0M-2 2L2 -2M6 10L10 6" stroke-width="1.4"/>'),
    "stack": ((8, 8), '<path d="M0 0L8 8M-2 6L2 10M6 -2L10 2" stroke-width="1.4"/>'),
    "mmap": ((12, 6), '<path d="M2 3H9" stroke-width="1.3"/>'),
    "kernel": ((10, 10), '<path d="M3 3L7 7M7 3L3 7" stroke-width="1.2"/>'),
}
_TINT = 0.86  # how much white in a box's background
_TEXT_TINT = 0.62  # text is solid: a deeper tint
_MARKS = 0.25  # how much white in a pattern's marks


def _tint(kind: str | None) -> str:
    """A kind's background: a light tint, deeper for text (drawn solid)."""
    return _mix(_colour(kind), _TEXT_TINT if kind == "text" else _TINT)


def _fill(kind: str | None) -> str:
    return f"url(#fill-{kind})" if kind in _PATTERNS else _tint(kind)


def _defs() -> list[str]:
    out = ["<defs>"]
    for kind, ((w, h), marks) in _PATTERNS.items():
        colour = _colour(kind)
        tint = _tint(kind)
        ink = _mix(colour, _MARKS)
        out.append(
            f'<pattern id="fill-{kind}" width="{w}" height="{h}" patternUnits="userSpaceOnUse">'
            f'<rect width="{w}" height="{h}" fill="{tint}"/>'
            f'<g fill="{ink}" stroke="{ink}">{marks}</g></pattern>'
        )
    # The hole: waves, nothing there to be had.
    out.append(
        '<pattern id="fill-hole" width="16" height="8" patternUnits="userSpaceOnUse">'
        '<rect width="16" height="8" fill="#f4f4f4"/>'
        f'<path d="M0 4Q4 0 8 4T16 4" fill="none" stroke="{BREAK}" stroke-width="1"/>'
        "</pattern>"
    )
    out.append("</defs>")
    return out


# --- text --------------------------------------------------------------------------------


def _text(s: str) -> str:
    """Untrusted text as XML character data."""
    return escape(printable(s))


def _attr(s: str) -> str:
    """Untrusted text as a quoted XML attribute value."""
    return quoteattr(printable(s))


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _fit(s: str, width: float, size: float, bold: bool = False) -> str:
    """`s` cut to what fits in `width` px at `size` px, with an ellipsis when cut."""
    if _width(s, size, bold) <= width:
        return s
    room = width - _width("…", size, bold)
    used = 0.0
    for i, ch in enumerate(s):
        used += _em(ch) * size * (_BOLD if bold else 1.0)
        if used > room:
            return s[:i].rstrip() + "…"
    return s


def _wrap(s: str, width: float, size: float) -> list[str]:
    """`s` in lines that fit `width` px, broken between words (a word too long is cut)."""
    lines: list[str] = []
    line = ""
    for word in s.split():
        joined = f"{line} {word}" if line else word
        if line and _width(joined, size) > width:
            lines.append(line)
            joined = word
        line = joined
    lines.append(line)
    return [_fit(line, width, size) for line in lines]


def _label(x, y, s, size, *, anchor="start", family=SANS, fill=INK, extra="") -> str:
    """A <text>: `s` is untrusted and escaped here."""
    a = f' text-anchor="{anchor}"' if anchor != "start" else ""
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" font-family="{family}" font-size="{_n(size)}"'
        f' fill="{fill}"{a}{extra}>{_text(s)}</text>'
    )


# --- the pieces of a band -----------------------------------------------------------------


def _address(value: int | None, band: Band, bits: int) -> str:
    """An address as band_address shows a start: for an end, or a tooltip."""
    if value is None:
        return ""
    if band.relative:
        return f"+0x{value:x}"
    return f"{value:0{bits // 4}x}"


def _range(band: Band, bits: int) -> str:
    if band.start is None or band.end is None:
        return "placed at run time"
    start, end = _address(band.start, band, bits), _address(band.end, band, bits)
    base = "load base " if band.relative else ""
    return f"{base}{start} to {end}"


def _tooltip(band: Band, bits: int) -> str:
    lines = [band_label(band), _range(band, bits)]
    if band.size:
        lines.append(f"{human_size(band.size)} ({band.size:,} bytes)")
    lines.extend(band_lines(band))
    return "\n".join(escape(printable(line)) for line in lines)


def _chip(x: float, baseline: float, width: float, size: float) -> str:
    """A white backing for a label over a pattern: from `x`, `width` wide."""
    return (
        f'<rect x="{_n(x - 4)}" y="{_n(baseline - size + 1)}" width="{_n(width + 8)}"'
        f' height="{_n(size + 4)}" rx="3" fill="#ffffff" fill-opacity="0.88"/>'
    )


def _arrow(direction: str, y: float, h: float, colour: str, faint: bool) -> list[str]:
    """A drawn arrow at the box's right end, pointing the way the band grows."""
    cx = BOX_RIGHT - 16
    length = min(h - 8, 26)
    top = y + (h - length) / 2
    bottom = top + length
    head = 7
    if direction == "up":
        tip, neck, tail = top, top + head, bottom
    else:
        tip, neck, tail = bottom, bottom - head, top
    points = [
        (cx, tip),
        (cx + 6, neck),
        (cx + 2, neck),
        (cx + 2, tail),
        (cx - 2, tail),
        (cx - 2, neck),
        (cx - 6, neck),
    ]
    opacity = ' opacity="0.6"' if faint else ""
    return [
        f'<rect x="{_n(cx - 10)}" y="{_n(top - 3)}" width="20" height="{_n(length + 6)}"'
        f' rx="4" fill="#ffffff" fill-opacity="0.9"{opacity}/>',
        '<polygon points="'
        + " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
        + f'" fill="{colour}"{opacity}/>',
    ]


def _zigzag(y: float, amplitude: float = 2.5, step: float = 8) -> str:
    points = []
    x, up = float(BOX_X), True
    while x < BOX_RIGHT:
        points.append(f"{_n(x)},{_n(y - amplitude if up else y + amplitude)}")
        x += step / 2
        up = not up
    points.append(f"{_n(BOX_RIGHT)},{_n(y)}")
    return (
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{BREAK}"'
        ' stroke-width="1" stroke-linejoin="round"/>'
    )


def _box(band: Band, y: float, h: float) -> list[str]:
    """The box of a band: its fill, stripes, border or break sides."""
    out = []
    if band.empty:
        fill = "url(#fill-hole)" if band.role == "hole" else "#ffffff"
        out.append(
            f'<rect x="{BOX_X}" y="{_n(y)}" width="{BOX_WIDTH}" height="{h}" fill="{fill}"/>'
        )
        for x in (BOX_X, BOX_RIGHT):
            out.append(
                f'<line x1="{x}" y1="{_n(y)}" x2="{x}" y2="{_n(y + h)}" stroke="{BREAK}"'
                ' stroke-width="1.2" stroke-dasharray="3 3"/>'
            )
        if band.role != "hole":  # a torn strip: zig-zag edges inside the solid ones
            out.append(_zigzag(y + 5))
            out.append(_zigzag(y + h - 5))
        return out
    if band.role == "planned":
        colour = _colour(band.kind)
        out.append(
            f'<rect x="{BOX_X}" y="{_n(y)}" width="{BOX_WIDTH}" height="{h}"'
            f' fill="{_fill(band.kind)}" fill-opacity="0.35"/>'
        )
        out.append(
            f'<rect x="{BOX_X + 0.5}" y="{_n(y + 1.5)}" width="{BOX_WIDTH - 1}"'
            f' height="{h - 3}" fill="none" stroke="{colour}" stroke-width="1.2"'
            ' stroke-dasharray="6 4"/>'
        )
        return out
    x = float(BOX_X)
    for kind, width in kind_cells(band.parts or ((band.kind, 1),), BOX_WIDTH):
        out.append(
            f'<rect x="{_n(x)}" y="{_n(y)}" width="{width}" height="{h}" fill="{_fill(kind)}"'
            f" data-part={_attr(kind or '')}/>"
        )
        x += width
    out.append(
        f'<rect x="{BOX_X}" y="{_n(y)}" width="{BOX_WIDTH}" height="{h}" fill="none"'
        f' stroke="{EDGE}" stroke-width="1"/>'
    )
    return out


def _band(band: Band, y: float, h: float, bits: int) -> list[str]:
    """One band's <g>: its box, label, arrow, address, size, lines and tooltip."""
    attrs = f"data-role={_attr(band.role)}"
    if band.kind is not None:
        attrs += f" data-kind={_attr(band.kind)}"
    if band.start is not None:
        attrs += f' data-start="0x{band.start:x}"'
    if band.end is not None:
        attrs += f' data-end="0x{band.end:x}"'
    if band.relative:
        attrs += ' data-relative="true"'
    attrs += f' data-size="{band.size}"'
    out = [f'<g class="band" {attrs}>', f"<title>{_tooltip(band, bits)}</title>"]
    out.extend(_box(band, y, h))

    faint = band.empty or band.role == "planned"
    baseline = y + min(h / 2 + 4.5, 16.5)
    bold = not faint
    label = _fit(band_label(band), BOX_WIDTH - (44 if band.arrow else 16), 12, bold)
    width = _width(label, 12, bold)
    x = BOX_X + (BOX_WIDTH - width) / 2 if band.empty else BOX_X + 8
    out.append(_chip(x, baseline, width, 12))
    style = ' font-weight="bold"' if bold else ' font-style="italic"'
    out.append(_label(x, baseline, label, 12, fill=INK if bold else MUTED, extra=style))
    if band.arrow in ("up", "down"):
        out.extend(_arrow(band.arrow, y, h, _colour(band.kind), faint))

    address = band_address(band, bits)
    if address:
        out.append(
            f'<line x1="{ADDRESS_RIGHT + 3}" y1="{_n(y + h)}" x2="{BOX_X}" y2="{_n(y + h)}"'
            f' stroke="{BREAK}" stroke-width="1"/>'
        )
        out.append(_label(ADDRESS_RIGHT, y + h + 4, address, 11.5, anchor="end", family=MONO))
    if band.size:
        out.append(_label(SIZE_RIGHT, baseline, human_size(band.size), 12, anchor="end"))

    lines = band_lines(band)
    room = 1 + max(int((h - 22) / _LINE), 0)
    for i, line in enumerate(lines[:room]):
        size, fill = (12, INK) if i == 0 else (11, MUTED)
        if faint and i == 0:
            fill = MUTED
        out.append(
            _label(WORDS_X, baseline + i * _LINE, _fit(line, WORDS_WIDTH, size), size, fill=fill)
        )
    out.append("</g>")
    return out


# --- the legend --------------------------------------------------------------------------


def _legend(picture: Picture, y: float) -> tuple[list[str], float]:
    """The legend's <g> from `y` down, and where it ends."""
    out = ['<g class="legend">']
    out.append(_label(MARGIN, y + 14, "Legend", 13, extra=' font-weight="bold"'))
    y += 28
    items = legend_items()
    kinds = [(kind, item) for kind, *item in items if kind is not None]
    column = (WIDTH - 2 * MARGIN) / 2
    rows = (len(kinds) + 1) // 2
    for i, (kind, (_, _, words)) in enumerate(kinds):
        x = MARGIN + (i // rows) * column
        top = y + (i % rows) * 22
        out.append(
            f'<g class="swatch" data-kind="{escape(kind)}">'
            f'<rect x="{_n(x)}" y="{_n(top)}" width="34" height="16" fill="{_fill(kind)}"'
            f' stroke="{EDGE}" stroke-width="1"/>'
            + _label(x + 44, top + 12.5, _fit(words, column - 54, 12), 12)
            + "</g>"
        )
    y += rows * 22 + 6
    signs = [item for kind, *item in items if kind is None]
    # The arrows: the two drawn shapes, as on the heap and the stack.
    arrows, breaks = signs[0][2], signs[1][2]
    x = MARGIN
    out.append('<g class="swatch" data-sign="arrows">')
    for i, direction in enumerate(("up", "down")):
        cx, tip, tail = x + 8 + i * 18, (y, y + 16), (y + 16, y)
        neck = tip[i] + (6 if direction == "up" else -6)
        points = [
            (cx, tip[i]),
            (cx + 5, neck),
            (cx + 1.8, neck),
            (cx + 1.8, tail[i]),
            (cx - 1.8, tail[i]),
            (cx - 1.8, neck),
            (cx - 5, neck),
        ]
        colour = _colour("heap" if direction == "up" else "stack")
        out.append(
            '<polygon points="'
            + " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
            + f'" fill="{colour}"/>'
        )
    out.append(_label(x + 44, y + 12.5, arrows, 12) + "</g>")
    x = MARGIN + column
    out.append('<g class="swatch" data-sign="break">')
    out.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="34" height="16" fill="#ffffff"/>')
    for side in (x, x + 34):
        out.append(
            f'<line x1="{_n(side)}" y1="{_n(y)}" x2="{_n(side)}" y2="{_n(y + 16)}"'
            f' stroke="{BREAK}" stroke-width="1.2" stroke-dasharray="3 3"/>'
        )
    for edge in (y + 3, y + 13):
        zig = " ".join(f"{_n(x + k * 4.25)},{_n(edge + (-2 if k % 2 else 2))}" for k in range(9))
        out.append(f'<polyline points="{zig}" fill="none" stroke="{BREAK}" stroke-width="1"/>')
    out.append(_label(x + 44, y + 12.5, breaks, 12) + "</g>")
    y += 30
    for line in _wrap(_scale_note(picture), WIDTH - 2 * MARGIN, 11):
        out.append(_label(MARGIN, y + 11, line, 11, fill=MUTED))
        y += 15
    out.append("</g>")
    return out, y


def _scale_note(picture: Picture) -> str:
    note = (
        "Heights grow with the logarithm of the size (16 px more for every 16 times a page, "
        "less past 1 GiB); breaks are not to scale."
    )
    if picture.folded:
        note += f" {picture.folded} small bands were folded into their neighbours."
    return note


# --- the documents -----------------------------------------------------------------------


def _svg(picture: Picture, heading: bool = True) -> str:
    """The <svg> element of a folded picture, without an XML declaration.

    Without `heading`, the title and notes are left to the page around it.
    """
    bits = picture.space.bits
    body: list[str] = []
    y = float(MARGIN)
    if heading:
        title = _fit(printable(picture.title or "Address space"), WIDTH - 2 * MARGIN, 20, True)
        y += 20
        body.append(_label(MARGIN, y, title, 20, extra=' font-weight="bold" class="title"'))
        y += 8
        for note in picture.notes:
            for line in _wrap(printable(note), WIDTH - 2 * MARGIN, 12):
                y += 17
                body.append(_label(MARGIN, y, line, 12, fill=MUTED, extra=' class="note"'))
        y += 14
    y += 20
    # The columns' heads, then the top of the address space.
    body.append(_label(ADDRESS_RIGHT, y - 12, "address", 10.5, anchor="end", fill=MUTED))
    body.append(_label(SIZE_RIGHT, y - 12, "size", 10.5, anchor="end", fill=MUTED))
    body.append(_label(WORDS_X, y - 12, "what is there", 10.5, fill=MUTED))
    top = f"{picture.space.top - 1:0{bits // 4}x}"
    body.append(
        f'<line x1="{ADDRESS_RIGHT + 3}" y1="{_n(y)}" x2="{BOX_X}" y2="{_n(y)}"'
        f' stroke="{BREAK}" stroke-width="1"/>'
    )
    body.append(_label(ADDRESS_RIGHT, y + 4, top, 11.5, anchor="end", family=MONO))
    for band in reversed(picture.bands):
        h = band_height(band)
        body.extend(_band(band, y, h, bits))
        y += h
    legend, y = _legend(picture, y + 30)
    body.extend(legend)
    height = round(y + MARGIN)
    description = " ".join(printable(n) for n in picture.notes)
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}"'
        f' height="{height}" viewBox="0 0 {WIDTH} {height}" role="img">',
        f"<title>{_text(picture.title or 'Address space')}</title>",
        f"<desc>{_text(description)}</desc>" if description else "",
        *_defs(),
        f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    return "\n".join(line for line in head + body if line) + "\n</svg>\n"


def render_svg(picture: Picture, max_bands: int = 120) -> str:
    """The picture as a standalone SVG 1.1 document, at most `max_bands` bands."""
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + _svg(fold(picture, max_bands))


_STYLE = """
body { font-family: DejaVu Sans, Helvetica, Arial, sans-serif; color: #1a1a1a;
  background: #ffffff; margin: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
p.note { color: #555555; margin: 2px 0; font-size: 13px; }
figure { margin: 16px 0; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 12px; margin-top: 16px; }
th, td { border-bottom: 1px solid #d0d0d0; padding: 3px 8px; text-align: left;
  vertical-align: top; }
th { background: #f0f0f0; }
td.address, td.size { font-family: DejaVu Sans Mono, Menlo, Consolas, monospace;
  white-space: nowrap; }
td.size { text-align: right; }
tr.empty td { color: #555555; font-style: italic; }
td .more { color: #555555; }
td.details { overflow-wrap: anywhere; }
span.chip { display: inline-block; width: 12px; height: 12px; border: 1px solid #37474f;
  vertical-align: middle; margin-right: 4px; }
span.sign { display: inline-block; width: 14px; margin-right: 4px; text-align: center; }
* { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
ul.legend { list-style: none; padding: 0; columns: 2; font-size: 13px; }
@media print {
  body { margin: 0; }
  figure { break-inside: avoid; page-break-inside: avoid; }
  figure svg { width: auto; max-height: 96vh; }
  table { width: 100%; font-size: 10px; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  ul.legend { break-inside: avoid; }
}
"""


def _html_chip(kind: str) -> str:
    return (
        f'<span class="chip" style="background: {_tint(kind)}; border-color: {_colour(kind)}">'
        "</span>"
    )


def render_html(picture: Picture, max_bands: int = 120) -> str:
    """The picture as a self-contained HTML5 page: the SVG, then a table of its bands."""
    folded = fold(picture, max_bands)
    bits = folded.space.bits
    e = html.escape
    title = e(printable(folded.title or "Address space"))
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
    ]
    out.extend(f'<p class="note">{e(printable(n))}</p>' for n in folded.notes)
    out.append(f"<figure>\n{_svg(folded, heading=False)}</figure>")
    out.append('<table class="bands">')
    out.append(
        "<thead><tr><th>start</th><th>end</th><th>size</th><th>kind</th><th>what</th>"
        "<th>details</th></tr></thead>"
    )
    out.append("<tbody>")
    for band in reversed(folded.bands):
        lines = band_lines(band)
        details = e(lines[0]) + "".join(
            f'<br><span class="more">{e(line)}</span>' for line in lines[1:]
        )
        kind = band.kind or ""
        chip = _html_chip(kind) if kind else ""
        row_class = ' class="empty"' if band.empty or band.role == "planned" else ""
        out.append(
            f"<tr{row_class} data-role={quoteattr(band.role)}>"
            f'<td class="address">{e(band_address(band, bits))}</td>'
            f'<td class="address">{e(_address(band.end, band, bits))}</td>'
            f'<td class="size">{e(human_size(band.size)) if band.size else ""}</td>'
            f"<td>{chip}{e(kind)}</td>"
            f"<td>{e(band_label(band))}</td>"
            f'<td class="details">{details}</td></tr>'
        )
    out.append("</tbody></table>")
    out.append('<ul class="legend">')
    items = legend_items()
    for kind, sign, _, words in items:
        if kind is not None:
            out.append(f"<li>{_html_chip(kind)}{e(words)}</li>")
        else:
            out.append(f'<li><span class="sign">{e(sign)}</span>{e(words)}</li>')
    out.append("</ul>")
    out.append(f'<p class="note">{e(_scale_note(folded))}</p>')
    out.append("</body>")
    out.append("</html>")
    return "\n".join(out) + "\n"
