"""The picture in a terminal: the lesson's diagram, drawn with characters.

High addresses at the top, as the lesson draws it.  Each band is a box of one
or more rows (one more for every 16x a page's size, coarser when the terminal
is short), filled with its kind's character in its kind's colour, so kinds
stay apart on a terminal without colour; gaps, the hole and the NULL page are
one-row breaks with dotted sides, labelled with their size.  On the left, the
address where each band starts; on the right, its size and what it is.  The
layout follows the width and height it is given: a narrow terminal loses the
details, then the addresses, never the boxes.

Everything from the process goes through printable() into Text, never markup.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from ..classify.notes import describe_kind
from ..model import KINDS
from ..views.picture import Band, Picture, fold, rows
from .text import human_size, printable
from .theme import kind_style

# The character that fills each kind's boxes: (unicode, ascii).  The shades go
# from code (solid) to bss (sparse, as zeros are); the heap's and the stack's
# diagonals lean the way they grow.
FILLS = {
    "text": ("█", "#"),
    "rodata": ("▓", "%"),
    "data": ("▒", "+"),
    "bss": ("░", ":"),
    "heap": ("╱", "/"),
    "stack": ("╲", "\\"),
    "mmap": ("╌", "-"),
    "kernel": ("╳", "x"),
}
ARROWS = {"up": ("↑", "^"), "down": ("↓", "v")}
MARK = ("◀", "<")  # points at a marked address: the fault, the program counter
# Box sides: mapped bands, and empty stretches (breaks, not to scale).
_SIDES = {"solid": ("│", "|"), "break": ("┊", ":")}


def fill_char(kind: str | None, ascii_only: bool = False) -> str:
    pair = FILLS.get(kind or "")
    return pair[ascii_only] if pair else " "


def band_label(band: Band, ascii_only: bool = False) -> str:
    """The words inside a box: "heap ↑", "libc.so.6"."""
    label = printable(band.label)
    if band.arrow:
        label += " " + ARROWS[band.arrow][ascii_only]
    return label


def band_address(band: Band, bits: int) -> str:
    """Where a band starts: 16 hex digits (8 on 32-bit), "+offset" in a load plan."""
    if band.start is None:
        return ""
    if band.relative:
        return f"+0x{band.start:x}"
    return f"{band.start:0{bits // 4}x}"


def band_lines(band: Band) -> list[str]:
    """What goes beside a band, line by line: what it is, then the facts that fit."""
    lines = [printable(band.detail)]
    if len(band.parts) > 1:
        lines.append(", ".join(f"{k} {human_size(n)}" for k, n in band.parts))
    if band.sections:
        lines.append(" ".join(printable(s) for s in band.sections))
    facts = []
    if band.perms:
        facts.append(band.perms)
    if band.regions > 1:
        facts.append(f"{band.regions} regions")
    if band.rss is not None:
        facts.append(f"{human_size(band.rss)} resident")
    if facts:
        lines.append(", ".join(facts))
    if band.path and band.role in ("library", "file", "image"):
        lines.append(printable(band.path))
    return lines


def legend_items(ascii_only: bool = False) -> list[tuple[str | None, str, str, str]]:
    """(kind, character, style, words) for each kind, then each sign (kind None)."""
    items = [(k, fill_char(k, ascii_only), kind_style(k), describe_kind(k).title) for k in KINDS]
    up, down = ARROWS["up"][ascii_only], ARROWS["down"][ascii_only]
    items.append((None, f"{up}{down}", "", "which way the heap and the stack grow"))
    items.append((None, _SIDES["break"][ascii_only], "", "unmapped: a break, not drawn to scale"))
    return items


class Diagram:
    """The picture as a rich renderable, fitted to `height` rows when given."""

    def __init__(self, picture: Picture, height: int | None = None, legend: bool = True):
        self.picture = picture
        self.height = height
        self.legend = legend

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        ascii_only = not options.encoding.lower().startswith("utf")
        legend = self.legend_lines(width, ascii_only) if self.legend else []
        picture = self.picture
        room = None
        if self.height is not None and len(legend) > self.height // 4:
            legend = legend[-1:]  # a short terminal: the bands first, the key only if it fits
        if self.height is not None:
            room = max(self.height - 2 - len(legend), 3)
            picture = fold(picture, room)
        bands = list(reversed(picture.bands))
        heights = list(reversed(rows(picture.bands, room)))
        yield from self.draw(bands, heights, picture, width, ascii_only, console)
        yield from legend

    def layout(self, width: int, bits: int) -> tuple[int, int, int]:
        """(address width, box width, detail width) for a console `width` wide."""
        aw = bits // 4 + 1  # room for "+0x..." in a load plan, or a space
        if width < 56:
            aw = 0
        rest = width - (aw + 1 if aw else 0) - 2  # the two sides
        box = max(min(30, rest - 11 - 46), 22)  # the boxes give way to the words down to 22
        detail = min(rest - box - 11, 90)  # beyond 90 columns, the words are no easier to read
        if detail < 12:  # no room for words: the boxes take it
            box, detail = max(min(30, rest - 10), 4), 0
        return aw, box, detail

    def draw(self, bands, heights, picture: Picture, width: int, ascii_only: bool, console=None):
        """The boxes, line by line: a Text for the top and bottom, segments between.

        A picture can have 600,000 bands: a rich Text per line costs ~80 us to
        render, so the lines between are built as segments here (~8 us), cut
        to `width` as a cropped Text would be.
        """
        aw, box, detail_width = self.layout(width, picture.space.bits)
        dim = Style(dim=True)
        bold = Style(bold=True)
        plain = Style()
        mark_style = Style(bold=True, color="red") if console and console.color_system else bold
        pad = " " * (aw + 1) if aw else ""
        corner = ("┌", "┐", "└", "┘", "─") if not ascii_only else ("+", "+", "+", "+", "-")
        top = Text(no_wrap=True, overflow="crop")
        if aw:
            top.append(f"{picture.space.top - 1:0{picture.space.bits // 4}x}".rjust(aw) + " ", dim)
        top.append(corner[0] + corner[4] * box + corner[1], dim)
        yield top
        styles: dict[str | None, Style] = {}

        def style_of(kind: str | None) -> Style:
            style = styles.get(kind)
            if style is None:
                name = kind_style(kind)
                style = styles[kind] = console.get_style(name) if console else Style.parse(name)
            return style

        # The widest a line can be: the address, the sides, the box, the size, the words.
        widest = (aw + 1 if aw else 0) + 2 + box + 10 + (2 + detail_width if detail_width else 0)
        plain_text = console is not None and console.color_system is None and widest <= width
        hole = [(("~" if ascii_only else "≈") * box, dim)]
        blank = [(" " * box, plain)]
        newline = Segment.line()
        for band, h in zip(bands, heights):
            faint = band.empty or band.role == "planned"
            side = _SIDES["break" if faint else "solid"][ascii_only]
            extra = band_lines(band)
            marked = _marks_in(band, picture.marks, ascii_only)
            if marked:
                extra = [marked, *extra]
            if band.role == "hole":
                fill = hole
            elif faint:
                fill = blank
            else:
                fill = [
                    (fill_char(kind, ascii_only) * cells, style_of(kind))
                    for kind, cells in kind_cells(band.parts or ((band.kind, 1),), box)
                ]
            for r in range(h):
                line: list[tuple[str, Style]] = []
                if aw:
                    address = band_address(band, picture.space.bits) if r == h - 1 else ""
                    line.append((address.rjust(aw) + " ", dim))
                line.append((side, dim))
                if r == 0:
                    label = " " + band_label(band, ascii_only) + " "
                    label = set_cell_size(label, min(cell_len(label), box))
                    line.append((label, dim if faint else bold))
                    line.extend(_cut(fill, cell_len(label)))
                else:
                    line.extend(fill)
                line.append((side, dim))
                if r == 0:
                    line.append((f" {human_size(band.size) if band.size else '':>9}", plain))
                if detail_width:
                    words = extra[r] if r < len(extra) else ""
                    shown = set_cell_size(words, detail_width).rstrip()
                    if cell_len(words) > detail_width:
                        shown = shown[:-1] + ("." if ascii_only else "…")
                    style = (mark_style if marked else plain) if r == 0 else dim
                    line.append((("  " if r == 0 else " " * 11) + shown, style))
                if plain_text:  # no colours, nothing to cut: the line in one piece
                    yield Segment("".join([text for text, _ in line]).rstrip() + "\n")
                    continue
                yield from _segments(line, width)
                yield newline
        bottom = Text(pad + corner[2] + corner[4] * box + corner[3], dim)
        bottom.no_wrap = True
        yield bottom

    def legend_lines(self, width: int, ascii_only: bool) -> list[Text]:
        lines, line = [], Text(no_wrap=True)
        for _, char, style, words in legend_items(ascii_only):
            piece = Text(char, style).append(" " + words)
            if line and cell_len(line.plain) + 3 + cell_len(piece.plain) > width:
                lines.append(line)
                line = Text(no_wrap=True)
            if line:
                line.append("   ")
            line.append_text(piece)
        if line:
            lines.append(line)
        note = "heights: one row, and one more for every 16 times a page"
        if self.picture.folded:
            note += f"; {self.picture.folded} small bands folded into their neighbours"
        lines.append(Text(note, "dim"))
        for line in lines:
            line.truncate(width, overflow="crop" if ascii_only else "ellipsis")
        return lines


def _marks_in(band: Band, marks, ascii_only: bool) -> str:
    """ "◀ fault 0x0, pc 0x5555..." for the marks inside a band's addresses, or ""."""
    if band.start is None or band.end is None:
        return ""
    inside = [f"{label} 0x{a:x}" for a, label in marks if band.start <= a < band.end]
    return f"{MARK[ascii_only]} {', '.join(inside)}" if inside else ""


def _cut(pieces: list[tuple[str, Style]], cells: int) -> list[tuple[str, Style]]:
    """The pieces without their first `cells` cells (fills are one cell a character)."""
    out = []
    for text, style in pieces:
        if cells >= len(text):
            cells -= len(text)
            continue
        out.append((text[cells:], style))
        cells = 0
    return out


def _segments(pieces: list[tuple[str, Style]], width: int) -> list[Segment]:
    """One line's pieces as segments, as a cropped Text gives them: the trailing
    spaces dropped, then cut at `width` cells."""
    while pieces:
        text, style = pieces[-1]
        stripped = text.rstrip()
        if stripped:
            pieces[-1] = (stripped, style)
            break
        pieces.pop()
    out, used = [], 0
    for text, style in pieces:
        if not text:
            continue
        n = cell_len(text)
        if used + n > width:
            text = set_cell_size(text, width - used)
            if text:
                out.append(Segment(text, style))
            break
        out.append(Segment(text, style))
        used += n
    return out


def kind_cells(parts, cells: int) -> list[tuple[str, int]]:
    """The box's width shared among its kinds by bytes, each present kind one cell at least."""
    parts = [(k, n) for k, n in parts if n]
    if not parts:
        return [(None, cells)]
    if len(parts) == 1 or cells < len(parts):
        return [(max(parts, key=lambda p: p[1])[0], cells)]
    total = sum(n for _, n in parts)
    spare = cells - len(parts)
    shares = [n * spare / total for _, n in parts]
    whole = [int(s) for s in shares]
    left = spare - sum(whole)
    for i in sorted(range(len(parts)), key=lambda i: whole[i] - shares[i])[:left]:
        whole[i] += 1
    return [(k, 1 + w) for (k, _), w in zip(parts, whole)]
