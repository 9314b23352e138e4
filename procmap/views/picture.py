"""The lesson's picture of an address space, as bands; pure.

The picture is the one every lesson draws, filled in from a real process: the
kernel's half at the top, the non-canonical hole, the stack, the memory-mapped
area, the heap, bss, data, rodata and text, and the unmapped low addresses at
the bottom.  A band is one box of it: a landmark (one kind of the program's
image, the heap, the main stack), a member of the mapping area (a library, a
thread stack, a malloc arena, the vdso, a run of anonymous or file mappings),
or a stretch of addresses with nothing in it (a gap, the hole, the NULL page).

`picture_of(regions, images)` gives the bands of a process, in address order,
tiling the whole address space from 0 to 2**64 (or 2**32).  `plan_picture`
gives the bands of an ELF file's load plan, with the parts that only exist at
run time (heap, mapping area, stack) as placeholders without addresses.
`fold` merges the smallest neighbours in the mapping area until a picture has
at most so many bands, and `rows` gives each band a height on a compressed
scale; the terminal and the SVG both draw from these, so they show the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..model import (
    ALLOCATORS,
    KERNEL_FILE_DETAILS,
    KERNEL_MADE_DETAILS,
    KINDS,
    Detail,
    JSONDict,
    LoadedImage,
    ProcessMap,
    Region,
    Resident,
    Space,
    address_space,
    hex_address,
    hex_or_none,
    space_of,
)

if TYPE_CHECKING:
    from .explain import Explanation

# What a band is.  Members of the mapping area can be folded together.
LANDMARKS = ("image", "heap", "stack")
MEMBERS = ("library", "thread stack", "arena", "vdso", "anonymous", "file", "folded")
EMPTY = ("gap", "hole", "null")
OTHERS = ("kernel", "kernel page", "planned")
ROLES = LANDMARKS + MEMBERS + EMPTY + OTHERS


class Band(NamedTuple):
    """One box of the picture: [start, end), or a placeholder (start and end None)."""

    start: int | None
    end: int | None
    role: str  # one of ROLES
    kind: str | None  # the colour: a region kind (the one with most bytes); None when empty
    label: str  # what the box says: "text", "libc.so.6", "heap", "unmapped"
    detail: str  # a phrase beside it
    parts: tuple[tuple[str, int], ...] = ()  # mapped bytes by kind, in KINDS order
    regions: int = 0  # how many regions it holds
    arrow: str = ""  # "up": grows up (heap); "down": grows down (stack)
    perms: str = ""  # the regions' permissions, when they all have the same
    path: str | None = None  # the object or file, in full
    sections: tuple[str, ...] = ()  # the ELF sections in it, in address order
    members: tuple[str, ...] = ()  # a folded band: the labels of what it holds
    rss: int | None = None  # resident bytes, when the map has smaps figures
    relative: bool = False  # the addresses are offsets from a load base chosen at run time

    @property
    def size(self) -> int:
        """What the band stands for: its mapped bytes, or the span of an empty band."""
        if self.parts:
            return sum(n for _, n in self.parts)
        if self.start is None or self.end is None:
            return 0
        return self.end - self.start

    @property
    def low(self) -> int:
        """Where a band with addresses starts (every band but a placeholder has them)."""
        if self.start is None:
            raise ValueError(f"{self.label}: a placeholder has no addresses")
        return self.start

    @property
    def high(self) -> int:
        if self.end is None:
            raise ValueError(f"{self.label}: a placeholder has no addresses")
        return self.end

    @property
    def span(self) -> int:
        return 0 if self.start is None or self.end is None else self.end - self.start

    @property
    def empty(self) -> bool:
        return self.role in EMPTY

    def to_dict(self) -> JSONDict:
        return {
            "start": hex_or_none(self.start),
            "end": hex_or_none(self.end),
            "role": self.role,
            "kind": self.kind,
            "label": self.label,
            "detail": self.detail,
            "size": self.size,
            "parts": dict(self.parts),
            "regions": self.regions,
            "arrow": self.arrow or None,
            "perms": self.perms or None,
            "path": self.path,
            "sections": list(self.sections),
            "members": list(self.members),
            "rss": self.rss,
            "relative": self.relative,
        }


class Picture(NamedTuple):
    """The bands, in address order (lowest first), and what they stand in."""

    title: str
    bands: list[Band]
    space: Space
    notes: tuple[str, ...] = ()
    folded: int = 0  # how many bands `fold` merged away
    # Addresses to point at, with what they are: ((0x0, "fault"), (pc, "pc")).
    marks: tuple[tuple[int, str], ...] = ()

    def to_dict(self) -> JSONDict:
        s = self.space
        return {
            "title": self.title,
            "bits": s.bits,
            "user_end": hex_or_none(s.user_end),
            "kernel_start": hex_or_none(s.kernel_start),
            "split": s.how,
            "bands": [b.to_dict() for b in self.bands],
            "notes": list(self.notes),
            "folded": self.folded,
            "marks": [{"address": hex_address(a), "label": label} for a, label in self.marks],
        }


# --- the address space -----------------------------------------------------------------

# --- a process ---------------------------------------------------------------------------


def map_picture(pmap: ProcessMap) -> Picture:
    """The lesson's picture of a process's map: bands from the NULL page to the kernel's half."""
    info = pmap.info
    title = f"PID {info.pid} ({info.name})" if info.pid else f"{info.name} (a saved maps text)"
    return picture_of(pmap.regions, pmap.images, title=title, resident=pmap.resident)


def picture_of(
    regions: Sequence[Region],
    images: Iterable[LoadedImage] = (),
    *,
    title: str = "",
    bits: int | None = None,
    resident: Sequence[Resident] | None = None,
) -> Picture:
    """The picture of a process's classified regions (address order, as classify gives).

    `images` are its LoadedImages (the program's role is "program");
    `resident`, when given, is each region's smaps figures (with .rss).
    """
    images = list(images)
    space = space_of(regions, images, bits)
    bits = space.bits
    program = next((im.path for im in images if im.role == "program"), None)
    if program is None:  # a plain maps text: the lowest ELF object is the program
        program = next((r.object for r in regions if r.object), None)
    user = [i for i, r in enumerate(regions) if r.end <= space.user_end]
    inner = [i for i, r in enumerate(regions) if r.end > space.user_end]
    roles = {im.path: im.role for im in images}
    bands = _group([regions[i] for i in user], program, _slice(resident, user), roles)
    bands = _with_gaps(bands, 0, space.user_end)
    notes = []
    kernel_pages = _group([regions[i] for i in inner], program, _slice(resident, inner), roles)
    bands.extend(_upper(space, kernel_pages))
    if space.kernel_start is None and bits == 32:
        notes.append("the kernel is outside this 32-bit address space")
    return Picture(title, bands, space, tuple(notes))


def _slice(resident: Sequence[Resident] | None, indexes: list[int]) -> list[Resident] | None:
    return None if resident is None else [resident[i] for i in indexes]


def _upper(space: Space, pages: list[Band]) -> list[Band]:
    """Above user space: the hole (64-bit) and the kernel's half with its pages in it."""
    out = []
    if space.kernel_start is not None and space.kernel_start > space.user_end:
        out.append(
            Band(
                space.user_end,
                space.kernel_start,
                "hole",
                None,
                "non-canonical hole",
                "no address here is valid: any access faults",
            )
        )
    start = space.kernel_start
    if start is None:
        return out
    for page in pages:
        if page.low > start:
            out.append(_kernel(start, page.low))
        out.append(page._replace(role="kernel page"))
        start = page.high
    if start < space.top:
        out.append(_kernel(start, space.top))
    return out


def _kernel(start: int, end: int) -> Band:
    return Band(
        start,
        end,
        "kernel",
        "kernel",
        "kernel space",
        "the kernel's own: in every process, reached only by system calls",
    )


class _Open:
    """A band being built from consecutive regions."""

    __slots__ = ("key", "role", "label", "detail", "arrow", "regions", "rss")

    def __init__(
        self, key: tuple[object, ...], role: str, label: str, detail: str, arrow: str = ""
    ):
        self.key = key
        self.role = role
        self.label = label
        self.detail = detail
        self.arrow = arrow
        self.regions: list[Region] = []
        self.rss: int | None = None

    def band(self) -> Band:
        rs = self.regions
        parts, kind = _sum_parts((r.kind, r.end - r.start) for r in rs)
        perms = {r.perms for r in rs}
        path = rs[0].object or rs[0].path
        sections = tuple(dict.fromkeys(s for r in rs for s in r.sections))
        return Band(
            rs[0].start,
            rs[-1].end,
            self.role,
            kind,
            self.label,
            self.detail or _details(self.role, rs),
            parts,
            len(rs),
            self.arrow,
            perms.pop() if len(perms) == 1 else "",
            path,
            sections,
            rss=self.rss,
        )


def _group(
    regions: Sequence[Region],
    program: str | None,
    resident: Sequence[Resident] | None = None,
    roles: dict[str, str] | None = None,
) -> list[Band]:
    """Consecutive regions that make one box each, as bands in address order.

    `roles` gives each ELF object's role ("shared library", "dynamic linker").
    """
    out: list[Band] = []
    current: _Open | None = None
    roles = roles or {}
    for i, r in enumerate(regions):
        key, role, label, detail, arrow = _key(r, program, current)
        if role == "library":
            detail = roles.get(r.object or "", "ELF object")
        # A band is one stretch of addresses: unmapped space between two
        # mappings of one kind (two anonymous mmaps 5 MiB apart) is a gap.
        if current is None or key != current.key or r.start != current.regions[-1].end:
            if current is not None:
                out.append(current.band())
            current = _Open(key, role, label, detail, arrow)
        current.regions.append(r)
        if resident is not None:
            # Huge pages (hugetlbfs) are in RAM but never counted in Rss.
            f = resident[i]
            current.rss = (current.rss or 0) + f.rss + f.shared_hugetlb + f.private_hugetlb
    if current is not None:
        out.append(current.band())
    return out


def _key(
    r: Region, program: str | None, current: _Open | None
) -> tuple[tuple[object, ...], str, str, str, str]:
    """(key, role, label, detail, arrow) of the band a region belongs to.

    A region joins the open band when its key is the same.
    """
    kind, detail = r.kind, r.detail
    if r.object is not None and r.object == program:
        return ("image", kind), "image", kind, "", ""
    if r.object is not None and kind != "kernel":
        return ("object", r.object), "library", _base(r.object), "", ""
    if kind == "heap":
        if detail is Detail.BRK_HEAP:
            return ("heap",), "heap", "heap", "", "up"
        if r.allocator not in (None, "glibc"):
            # Another allocator's or runtime's heap: one box per run of its memory.
            label = _RUNTIME_BANDS.get(detail) or f"{ALLOCATORS.get(r.allocator, r.allocator)} heap"
            return ("heap of", r.allocator, label), "arena", label, "", ""
        # An arena and the reserve above it; a new arena starts at each "malloc arena".
        if (
            detail is Detail.MALLOC_ARENA_RESERVE
            and current is not None
            and current.role == "arena"
        ):
            return current.key, "arena", "", "", ""
        return ("arena", r.start), "arena", "malloc arena", "", ""
    if kind == "stack":
        if detail is Detail.MAIN_STACK:
            return ("stack",), "stack", "stack", "", "down"
        # glibc's thread stack: a guard page, then the stack right above it.
        if (
            detail not in _GUARDS
            and current is not None
            and current.role == "thread stack"
            and all(x.detail in _GUARDS for x in current.regions)
        ):
            return current.key, "thread stack", "", "", ""
        return ("thread", r.start), "thread stack", "thread stack", "", ""
    if kind == "kernel":
        return ("kernel", r.start), "kernel page", r.path or r.description, "", ""
    if detail in _RUNTIME_BANDS:  # a runtime's own data, its JIT code (V8's builtins in it)
        label = _RUNTIME_BANDS[detail]
        return ("runtime", r.allocator, label), "anonymous", label, "", ""
    if detail in KERNEL_MADE_DETAILS:
        return ("vdso",), "vdso", "vdso", "", ""
    if r.path is None:
        return ("anonymous",), "anonymous", "anonymous", "", ""
    return ("file", r.path), "file", _file_label(r), "", ""


# A thread stack's band begins with its guard: glibc's page, or the JVM's zones.
_GUARDS = frozenset((Detail.GUARD_PAGE, Detail.JAVA_STACK_GUARD))
# Runtimes' memory by what it holds (the JVM's heap: Java objects, and class
# metadata); an allocator's heap by its name ("jemalloc heap").
_RUNTIME_BANDS = {
    Detail.GO_RUNTIME_DATA: "Go runtime data",
    Detail.JIT_CODE: "JIT code",
    Detail.JIT_CODE_RESERVE: "JIT code",
    Detail.V8_CODE: "JIT code",
    Detail.V8_CODE_RESERVE: "JIT code",
    Detail.V8_EMBEDDED_BUILTINS: "JIT code",
    Detail.V8_HEAP: "JavaScript heap",
    Detail.GO_HEAP_ARENA: "Go heap",
    Detail.GO_HEAP_RESERVE: "Go heap",
    Detail.JAVA_HEAP: "Java heap",
    Detail.JAVA_HEAP_YOUNG: "Java heap",
    Detail.JAVA_HEAP_OLD: "Java heap",
    Detail.JAVA_HEAP_RESERVE: "Java heap",
    Detail.METASPACE: "class metadata",
    Detail.CLASS_SPACE: "class metadata",
    Detail.JVM_RESERVE: "class metadata",
}


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1] or path


def _file_label(r: Region) -> str:
    """A file band's name: the file's; for the kernel's own unlinked files (memfd,
    SysV...), their name without the " (deleted)" maps always gives them."""
    path = r.path or ""
    if r.detail in KERNEL_FILE_DETAILS and path.endswith(" (deleted)"):
        name = path[:-10]
        return name if name == "/dev/zero" else name[1:]
    return _base(path)


def _details(role: str, regions: list[Region]) -> str:
    """What the regions are, in a phrase: their details, each once ("read-only data, relro")."""
    if role == "thread stack":
        stacks = [r for r in regions if r.detail not in _GUARDS]
        words = stacks[0].description if stacks else regions[0].description
        return words + (", above its guard page" if len(stacks) < len(regions) else "")
    if role == "vdso":
        words = " ".join(r.path or r.description for r in regions)
        return words + ": the kernel's code for fast calls"
    seen: dict[str, None] = {}
    for r in regions:
        # In the program's image, the words before a comma: "bss, in the last file
        # page" then "bss" is one thing to a reader, bss.
        words = r.description
        seen.setdefault(words.split(",")[0] if role == "image" else words, None)
    # Words with commas of their own ("Go heap arena, reserved, ...") are kept apart by "; ".
    return ("; " if any("," in words for words in seen) else ", ").join(seen)


def _with_gaps(bands: list[Band], low: int, high: int) -> list[Band]:
    """The bands with the unmapped stretches between them, from `low` to `high`."""
    out: list[Band] = []
    at = low
    heap = next((b for b in bands if b.role == "heap"), None)
    stack = next((b for b in bands if b.role == "stack"), None)
    for b in bands:
        if b.low > at:
            out.append(_gap(at, b.low, out[-1] if out else None, b, heap, stack))
        out.append(b)
        at = b.high
    if at < high:
        out.append(_gap(at, high, out[-1] if out else None, None, heap, stack))
    return out


def _gap(
    start: int,
    end: int,
    below: Band | None,
    above: Band | None,
    heap: Band | None,
    stack: Band | None,
) -> Band:
    if below is None:
        return Band(
            start,
            end,
            "null",
            None,
            "unmapped (NULL)",
            "the low addresses: never mapped, so a NULL pointer faults here",
        )
    if above is None:
        detail = "up to the top of user space"
    elif below is heap:
        detail = "free: the heap grows up into it" + (
            ", mmaps come down into it" if above.role in MEMBERS else ""
        )
    elif above is heap:
        detail = "the heap starts a random distance above the program (ASLR)"
    elif above is stack:
        detail = "free: the stack grows down into it, as far as its limit"
    elif above.role in MEMBERS and below.role in LANDMARKS:
        detail = "free: mmaps come down into it"
    else:
        detail = "unmapped"
    return Band(start, end, "gap", None, "unmapped", detail)


# --- an ELF file's load plan -------------------------------------------------------------


def plan_picture(explanation: Explanation) -> Picture:
    """The picture of an ELF file's load plan (an explain.Explanation).

    The file's own bands at the addresses of the plan (offsets from a load base
    chosen at run time, for a PIE or a shared object); the heap, the mapping
    area and the stack as placeholders, since only a run puts them somewhere;
    the hole and the kernel's half as the machine draws them.
    """
    exp = explanation
    bits = exp.layout.elf_class
    space = address_space(None, bits, exp.facts.machine)
    relative = exp.facts.type not in ("executable", "static")
    path = exp.path
    own = _group([r._replace(object=path) for r in exp.regions], path)
    if own and own[-1].high > space.user_end:
        # A segment above the usual top of user space (a damaged or hand-made file):
        # the space that holds it, or its band would sit in the hole.
        space = address_space(own[-1].high, bits)
    if relative:
        own = [b._replace(relative=True) for b in own]
    library = exp.loader == "dynamic linker"
    if own and not relative:
        bands = _with_gaps(own, 0, own[-1].high)
    else:
        below = (
            "below: the program that loads it, and its heap"
            if library
            else "below the load base, which the kernel picks at run time (ASLR)"
        )
        bands = [
            Band(None, None, "null", None, "unmapped (NULL)", below + "; NULL is never mapped")
        ]
        bands.extend(_with_gaps(own, own[0].low, own[-1].high) if own else [])
    if exp.loader and not library:
        if exp.facts.type == "static-pie":
            heap = "at run time: low, where a PIE would be loaded (Linux moves a static PIE's brk)"
        else:
            heap = "at run time: just above bss, plus a random offset"
        bands.append(_planned("heap", "heap", heap + "; grows up", "up"))
    if exp.loader:
        if library:
            area = "at run time: the program's other libraries and mmaps, around this one"
        elif exp.facts.interpreter:
            area = "at run time: the dynamic linker, then the libraries it loads"
        else:
            area = "at run time: nothing until the program maps something (no dynamic linker)"
        bands.append(_planned("mmap", "memory-mapped area", area))
        stack = "at run time: near the top of user space; grows down"
        bands.append(_planned("stack", "stack", stack, "down"))
    bands.extend(_upper(space, []))
    notes = [f"the plan of {path}; the kernel's half and the hole as {space.how}"]
    return Picture(f"{_base(path)}: the load plan", bands, space, tuple(notes))


def _planned(kind: str, label: str, detail: str, arrow: str = "") -> Band:
    """A placeholder: a part of the picture that only a run puts somewhere."""
    return Band(None, None, "planned", kind, label, detail, arrow=arrow)


# --- fitting: fold the mapping area, give rows --------------------------------------------


def fold(picture: Picture, limit: int) -> Picture:
    """The picture with at most `limit` bands, merging neighbours.

    First the mapping area's members, the smallest neighbours first (with the
    gap between them, if any); then, if that is not enough, the kernel's half
    into one band, and the program's image into one.  The heap, the stack and
    the breaks beside them never merge: when even that is not enough, the
    picture keeps more bands than `limit`.
    """
    bands = list(picture.bands)
    before = len(bands)
    _fold_members(bands, limit)
    if len(bands) > limit:
        _fold_run(bands, ("kernel", "kernel page"), _whole_kernel)
    if len(bands) > limit:
        _fold_run(bands, ("image",), _whole_image)
    merged = before - len(bands)
    if not merged:
        return picture
    return picture._replace(bands=bands, folded=picture.folded + merged)


def _fold_run(
    bands: list[Band], roles: tuple[str, ...], merge: Callable[[list[Band]], Band]
) -> None:
    """Merge the first run of bands with these roles (and the gaps inside it) into one."""
    at = [i for i, b in enumerate(bands) if b.role in roles]
    if len(at) > 1:
        bands[at[0] : at[-1] + 1] = [merge(bands[at[0] : at[-1] + 1])]


def _whole_kernel(bands: list[Band]) -> Band:
    pages = [b for b in bands if b.role == "kernel page"]
    whole = _kernel(bands[0].low, bands[-1].high)
    named = ", ".join(f"{b.label} at {b.start:x}" for b in pages)
    return whole._replace(
        detail=whole.detail + (f"; {named}" if named else ""),
        regions=sum(b.regions for b in bands),
        members=tuple(b.label for b in pages),
    )


def _whole_image(bands: list[Band]) -> Band:
    parts, kind = _sum_parts(p for b in bands for p in b.parts)
    path = next((b.path for b in bands if b.path), None)
    return Band(
        bands[0].start,
        bands[-1].end,
        "image",
        kind,
        _base(path) if path else "program",
        "the program: " + ", ".join(dict.fromkeys(b.label for b in bands if b.parts)),
        parts,
        sum(b.regions for b in bands),
        path=path,
        members=tuple(b.label for b in bands if b.parts),
        rss=_sum_rss(bands),
        relative=bands[0].relative,
    )


def _fold_members(bands: list[Band], limit: int) -> None:
    """Merge the smallest neighbouring members of the mapping area, in place."""
    while len(bands) > limit:
        pairs = []
        for i, b in enumerate(bands):
            if b.role not in MEMBERS:
                continue
            j = i + 1
            if j < len(bands) and bands[j].role == "gap":
                j += 1
            if j < len(bands) and bands[j].role in MEMBERS:
                pairs.append((b.size + bands[j].size, i, j))
        if not pairs:
            break
        pairs.sort()
        excess = len(bands) - limit
        taken: set[int] = set()
        plan = []
        for _, i, j in pairs:
            if excess <= 0:
                break
            if any(k in taken for k in range(i, j + 1)):
                continue
            taken.update(range(i, j + 1))
            plan.append((i, j))
            excess -= j - i
        merged, at = [], 0  # one pass over the list: 20,000 slice assignments are O(n**2)
        for i, j in sorted(plan):
            merged.extend(bands[at:i])
            merged.append(_merge(bands[i : j + 1]))
            at = j + 1
        merged.extend(bands[at:])
        bands[:] = merged


def _merge(bands: list[Band]) -> Band:
    members: list[str] = []
    for b in bands:
        if b.role == "folded":
            members.extend(b.members)
        elif b.role != "gap":
            members.append(b.label)
    parts, kind = _sum_parts(p for b in bands for p in b.parts)
    rss = _sum_rss(bands)
    count = sum(b.regions for b in bands)
    shown = ", ".join(dict.fromkeys(members))
    return Band(
        bands[0].start,
        bands[-1].end,
        "folded",
        kind,
        f"{len(members)} mappings" if len(members) > 1 else members[0],
        shown,
        parts,
        count,
        members=tuple(members),
        rss=rss,
    )


def _sum_parts(
    pairs: Iterable[tuple[str, int]],
) -> tuple[tuple[tuple[str, int], ...], str | None]:
    """(kind, bytes) pairs added up by kind, in KINDS order, and the kind with the most."""
    sizes = dict.fromkeys(KINDS, 0)
    for kind, n in pairs:
        sizes[kind] += n
    parts = tuple((k, n) for k, n in sizes.items() if n)
    return parts, max(parts, key=lambda p: p[1])[0] if parts else None


def _sum_rss(bands: list[Band]) -> int | None:
    known = [b.rss for b in bands if b.rss is not None]
    return sum(known) if known else None


def weight(band: Band, page: int = 4096) -> float:
    """How many times 16 the band's size is a page: the compressed scale, from 0."""
    if band.empty or band.role == "planned":
        return 0.0
    return math.log(max(band.size, page) / page, 16)


def rows(bands: Sequence[Band], room: int | None = None, tallest: int = 6) -> list[int]:
    """A height in rows for each band: one, and one more for every 16x a page's size.

    Empty stretches (gaps, the hole, the NULL page) are one row, labelled with
    their size: they are breaks, not to scale.  With `room`, the scale is
    coarsened until the bands fit (each still at least one row), so a larger
    band is never drawn shorter than a smaller one.
    """
    weights = [weight(b) for b in bands]
    step = 1.0
    while True:
        heights = [min(1 + int(w / step), tallest) for w in weights]
        if room is None or sum(heights) <= room or all(h == 1 for h in heights):
            return heights
        step *= 1.25
