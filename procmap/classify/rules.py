"""Mappings + ELF layouts -> regions of one kind each.

Pure: everything this module knows about the process arrives as arguments
(the parsed maps, the ELF layout of each mapped file, the facts in `Facts`), so
it classifies a saved snapshot exactly as it classifies a live process.

Every byte of every mapping gets exactly one kind.  A mapping that holds two
kinds (the last page of a data segment is data up to p_filesz and bss after it)
is cut at the exact byte the ELF headers give, so the regions tile the mappings
with no gap and no overlap.  The rules, strongest first:

1. Loaded ELF images.  The load bias of each image comes from its executable
   mapping and the program headers; with it, each PT_LOAD's bytes are placed,
   and the mappings that hold them become text (an executable segment), rodata
   (a read-only one, or RELRO: a writable one the dynamic linker made read-only),
   data (writable bytes from the file) and bss (writable bytes past p_filesz,
   in the last file page and the anonymous mapping after it).
2. The memory other allocators and runtimes manage where its place is known:
   reported by the runtime itself (the JVM's heap, metaspace and code cache)
   or fixed by its design (the Go heap's arenas, mimalloc's hint area); see
   classify.runtimes.
3. glibc malloc arenas: anonymous reservations aligned to their maximum size,
   only where glibc answers malloc.
4. Thread stacks, from each thread's stack pointer, and the guard page below.
5. Thread stacks by shape, for threads whose stack pointer could not be read.
6. Other allocators' heaps found by their shape (jemalloc, tcmalloc, mimalloc),
   and the Go runtime's own data in a pure Go process.
7. Everything else, by its kernel name ([heap], [stack], [vdso]...), its path
   (memfd, SysV shared memory...) or its permissions.

Rules 3, 5 and 6, any range of rule 2 inferred from layout, and any image
classified without its ELF headers, are heuristics, and their regions say so.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ..elf import ElfLayout, Segment, align_down, align_up
from ..elf.layout import ET_EXEC, PF_W, PF_X, SHF_EXECINSTR
from ..model import (
    Detail,
    Facts,
    FileKey,
    HeapRange,
    LoadedImage,
    Mapping,
    Region,
    strip_deleted,
)
from . import runtimes


class Classification(NamedTuple):
    regions: list[Region]
    images: list[LoadedImage]
    warnings: list[str]


# A label is everything a region carries beyond its addresses.
# Its fields follow a Mapping's in a Region: mapping + label is a region.
class _Label(NamedTuple):
    kind: str
    detail: Detail
    object: str | None = None
    sections: tuple[str, ...] = ()
    heuristic: bool = False
    tid: int | None = None
    allocator: str | None = None  # whose memory: a key of model.ALLOCATORS


_Piece = tuple[int, int, _Label]  # (start, end, label): bytes of a mapping that a rule claims
_BRK_HEAPS: dict[str | None, _Label] = {}  # [heap]'s label, by the allocator that owns it


def classify(
    mappings: list[Mapping],
    layouts: dict[FileKey, ElfLayout | None],
    facts: Facts | None = None,
    unreadable: dict[FileKey, str] | None = None,
    sections: bool = True,
    memo: ClassifyMemo | None = None,
) -> Classification:
    """Classify `mappings` (in address order) into regions.

    `layouts` maps a file's (dev, inode) to its ELF layout, or to None for a
    file that was read and is not ELF.  A file missing from `layouts` could not
    be read: its mappings are classified by names and permissions, and the
    warning says why, from `unreadable` (file key -> reason), when given.
    `sections=False` leaves each region's `sections` empty: the kinds are the
    same, and `procmap system`, classifying every process, saves a quarter of
    its classifying time.  `memo`, kept from one call to the next with the
    same `layouts`, keeps what is worked out once per ELF file (a library
    loaded by fifty processes is cut into regions the same way in each, at
    another address).
    """
    facts = facts or Facts()
    return _Classifier(mappings, layouts, facts, unreadable or {}, sections, memo).run()


class ClassifyMemo:
    """What classify() works out per ELF layout, kept across calls (and processes).

    Keyed by the layouts' id(): keep it no longer than the layouts it was used
    with (live.capture.ElfCache holds both).  Each mapping of a loaded image is
    cut the same way at any load bias: its pieces are kept relative to the bias.
    """

    def __init__(self) -> None:
        self.load_indexes: dict[int, _LoadIndex] = {}
        self.code_runs: dict[tuple[int, Segment], list[tuple[int, int, str, Detail]]] = {}
        self.pieces: dict[tuple[object, ...], list[_Piece]] = {}
        self.biases: dict[tuple[object, ...], list[int]] = {}


class _Classifier:
    def __init__(
        self,
        mappings: list[Mapping],
        layouts: dict[FileKey, ElfLayout | None],
        facts: Facts,
        unreadable: dict[FileKey, str],
        sections: bool = True,
        memo: ClassifyMemo | None = None,
    ):
        self.maps: list[Mapping] = mappings
        self.sections = sections
        self.memo = memo
        self.layouts = layouts
        self.unreadable = unreadable
        self.facts = facts
        self.page = facts.page_size
        self.starts = [m.start for m in mappings]
        # Mapping index -> claimed (start, end, label) pieces; the first claim on a byte wins.
        self.claims: dict[int, list[tuple[int, int, _Label]]] = {}
        self.warnings: list[str] = []
        self.plan = plan = runtimes.plan(facts)
        brk_heap = _BRK_HEAPS.get(plan.brk_owner)
        if brk_heap is None:
            brk_heap = _BRK_HEAPS[plan.brk_owner] = _Label(
                "heap", Detail.BRK_HEAP, allocator=plan.brk_owner
            )
        self.brk_heap = brk_heap
        shared = memo or ClassifyMemo()
        self._load_indexes = shared.load_indexes
        self._code_runs = shared.code_runs

    def load_index(self, layout: ElfLayout) -> _LoadIndex:
        index = self._load_indexes.get(id(layout))
        if index is None:
            index = self._load_indexes[id(layout)] = _LoadIndex.build(layout, self.page)
        return index

    def run(self) -> Classification:
        images = self.find_images()
        for image in images:
            self.claim_image(image)
        self.claim_unreadable_binaries()
        plan, facts = self.plan, self.facts
        if plan.early or facts.heap_ranges:
            for r in runtimes.early_ranges(self.maps, facts, plan):
                self.claim_range(r)
        if plan.glibc_arenas:
            self.claim_arenas()
        stacked = self.claim_thread_stacks()
        self.claim_stacks_by_shape(stacked)
        if plan.late:
            for r in runtimes.late_ranges(self.maps, self.unclaimed, facts, plan):
                self.claim_range(r)
        regions = []
        for i, m in enumerate(self.maps):
            regions.extend(self.cut(i, m))
        return Classification(regions, images, self.warnings)

    # --- claims ------------------------------------------------------------------

    def claim(self, i: int, start: int, end: int, label: _Label) -> bool:
        """Give `label` to the bytes of [start, end) in mapping i not yet claimed.

        The first claim on a byte wins, so rules claim in order of strength.
        Returns whether anything was claimed.
        """
        m = self.maps[i]
        start, end = max(start, m.start), min(end, m.end)
        pieces = self.claims.get(i)
        if pieces is None:  # the first claim on this mapping (most are): nothing to skip
            if start >= end:
                return False
            self.claims[i] = [(start, end, label)]
            return True
        claimed = False
        for s, e, _ in sorted(pieces, key=lambda c: c[0]):
            if start >= end:
                break
            if e <= start or s >= end:
                continue
            if s > start:
                pieces.append((start, s, label))
                claimed = True
            start = max(start, e)
        if start < end:
            pieces.append((start, end, label))
            claimed = True
        return claimed

    def claim_range(self, r: HeapRange) -> None:
        """Give a runtime's range its label, in every mapping it meets."""
        label = _Label(r.kind, r.detail, None, (), r.heuristic, None, r.allocator)
        reserve = label if r.reserve is None else label._replace(detail=r.reserve)
        i = max(bisect.bisect_right(self.starts, r.start) - 1, 0)
        while i < len(self.maps) and self.maps[i].start < r.end:
            m = self.maps[i]
            if m.end > r.start:
                self.claim(i, r.start, r.end, reserve if m.perms[:3] == "---" else label)
            i += 1

    def unclaimed(self, i: int) -> bool:
        return not self.claims.get(i)

    def free_tail(self, i: int) -> int:
        """Start of the unclaimed run of bytes that ends mapping i's range."""
        start = self.maps[i].start
        for _, e, _ in self.claims.get(i, ()):
            start = max(start, e)
        return start

    def cut(self, i: int, m: Mapping) -> list[Region]:
        pieces = self.claims.get(i)
        if not pieces:
            # Most mappings are one region, the whole mapping: a Region is the
            # mapping's fields then the label's, so one tuple concatenation.
            return [_new_region(Region, m + self.generic(i, m))]
        pieces.sort(key=lambda c: c[0])
        out = []
        pos = m.start
        generic = None
        for s, e, label in pieces:
            if s > pos:
                generic = generic or self.generic(i, m)
                out.append(self.region(m, pos, s, generic))
            out.append(self.region(m, s, e, label))
            pos = e
        if pos < m.end:
            out.append(self.region(m, pos, m.end, generic or self.generic(i, m)))
        return out

    @staticmethod
    def region(m: Mapping, start: int, end: int, label: _Label) -> Region:
        offset = m.offset + (start - m.start) if m.is_file else m.offset
        return Region(
            start,
            end,
            m.perms,
            offset,
            m.dev,
            m.inode,
            m.path,
            label.kind,
            label.detail,
            label.object,
            label.sections,
            label.heuristic,
            label.tid,
            label.allocator,
        )

    def index_at(self, address: int) -> int | None:
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.maps[i].end:
            return i
        return None

    # --- 1. loaded ELF images ------------------------------------------------------

    def find_images(self) -> list[LoadedImage]:
        by_key: dict[FileKey, list[int]] = {}
        for i, m in enumerate(self.maps):
            if m.inode and m.path is not None and not m.path.startswith("["):
                by_key.setdefault(m.file_key, []).append(i)
        images = []
        for key, indexes in by_key.items():
            layout = self.layouts.get(key)
            if layout is None or not layout.loads:
                continue
            for bias in self.biases_of(layout, indexes):
                lo = bias + align_down(min(s.vaddr for s in layout.loads), self.page)
                hi = bias + align_up(max(s.vaddr + s.memsz for s in layout.loads), self.page)
                named = self.maps[indexes[0]].path or ""
                path = strip_deleted(named)
                image = LoadedImage(path, key, layout, bias, lo, hi, self.role(key), path != named)
                images.append(image)
        images.sort(key=lambda im: im.start)
        return images

    def role(self, key: FileKey) -> str:
        facts = self.facts
        # With the dynamic linker run as a command, exe is the dynamic linker
        # (interp_key) and program_key the program it loaded.
        if key == (facts.program_key or facts.exe_key):
            return "program"
        if key == facts.interp_key:
            return "dynamic linker"
        return "shared library"

    def biases_of(self, layout: ElfLayout, indexes: list[int]) -> list[int]:
        """load_biases(), from the memo when the file's mappings had this shape before:
        the same offsets and permissions at the same distances from each other (a
        library in another process, at another address).  Not for ET_EXEC, whose
        bias must be 0."""
        if self.memo is None or layout.type == ET_EXEC:
            return self.load_biases(layout, indexes)
        maps = self.maps
        base = maps[indexes[0]].start
        key = (
            id(layout),
            self.page,
            tuple((maps[i].start - base, maps[i].offset, maps[i].perms) for i in indexes),
        )
        biases = self.memo.biases.get(key)
        if biases is None:
            biases = [b - base for b in self.load_biases(layout, indexes)]
            self.memo.biases[key] = biases
        return [b + base for b in biases]

    def load_biases(self, layout: ElfLayout, indexes: list[int]) -> list[int]:
        """The load biases at which this file is loaded (usually one; none if only mmap()ed).

        A mapping whose offset falls in a PT_LOAD's file bytes, with matching
        execute permission, proposes bias = start - (p_vaddr + offset - p_offset).
        A real load has its executable segment mapped executable, which a plain
        mmap() of the file (even of an ELF file) does not; a file with no
        executable segment counts as loaded only when every segment is in place.
        """
        page = self.page
        support: dict[int, set[int]] = {}
        by_offset = _loads_by_offset(layout, page)
        starts = [start for start, _ in by_offset]
        for i in indexes:
            m = self.maps[i]
            # The segments whose file bytes hold m.offset: in a real file one or two
            # (a page shared by neighbours).  A hostile file can put a thousand at one
            # offset, so the search is bounded: it must not make classify quadratic.
            j = bisect.bisect_right(starts, m.offset)
            for _, seg in by_offset[max(0, j - _MAX_SEGMENTS_PER_OFFSET) : j]:
                if not (align_down(seg.offset, page) <= m.offset < seg.offset + seg.filesz):
                    continue
                if ("x" in m.perms) != bool(seg.flags & PF_X):
                    continue
                if "w" in m.perms and not seg.flags & PF_W:
                    continue
                bias = m.start - (seg.vaddr + m.offset - seg.offset)
                if bias % page or (layout.type == ET_EXEC and bias != 0):
                    continue
                support.setdefault(bias, set()).add(id(seg))
        has_exec = any(s.flags & PF_X and s.filesz for s in layout.loads)
        needed = {id(s) for s in layout.loads if s.filesz}
        executable = {id(s) for s in layout.loads if s.flags & PF_X}
        biases = []
        for bias, segs in sorted(support.items()):
            if has_exec:
                if segs & executable:
                    biases.append(bias)
            elif segs >= needed:
                biases.append(bias)
        if len(biases) > _MAX_COPIES:
            # More copies than dlmopen() namespaces allow: a hostile file, not a load.
            biases.sort(key=lambda b: -len(support[b]))
            biases = sorted(biases[:_MAX_COPIES])
        return biases

    def claim_image(self, image: LoadedImage) -> None:
        lo = bisect.bisect_right(self.starts, image.start) - 1
        for i in range(max(lo, 0), len(self.maps)):
            m = self.maps[i]
            if m.start >= image.end:
                break
            if m.end <= image.start:
                continue
            if m.is_file and m.file_key != image.key:
                continue  # another file mapped over the image's span
            if not m.is_file and m.path is not None and m.path != "[heap]":
                continue  # [stack], [vdso]...: never part of an image
            for start, end, label in self.pieces_of(image, m):
                self.claim(i, start, end, label)

    def pieces_of(self, image: LoadedImage, m: Mapping) -> Iterable[_Piece]:
        """image_pieces(), from the memo when this mapping of this file was cut before."""
        if self.memo is None:
            return self.image_pieces(image, m)
        bias = image.bias
        key = (
            id(image.layout),
            image.path,
            self.page,
            self.sections,
            m.start - bias,
            m.end - bias,
            m.perms,
            m.is_file,
        )
        pieces = self.memo.pieces.get(key)
        if pieces is None:
            pieces = [(s - bias, e - bias, label) for s, e, label in self.image_pieces(image, m)]
            self.memo.pieces[key] = pieces
        return [(s + bias, e + bias, label) for s, e, label in pieces]

    def image_pieces(self, image: LoadedImage, m: Mapping) -> Iterator[_Piece]:
        """(start, end, label) for the parts of mapping `m` inside `image`.

        File mappings of the image take every kind; anonymous memory inside the
        image's span takes only what an image puts there: bss past a writable
        segment's file bytes, or no-access padding between segments.
        """
        page, bias, layout = self.page, image.bias, image.layout
        s, e = max(m.start, image.start), min(m.end, image.end)
        pos = s
        for seg in self.load_index(layout).near(s - bias, e - bias):
            lo = bias + align_down(seg.vaddr, page)
            hi = bias + align_up(seg.vaddr + seg.memsz, page)
            a, b = max(s, lo), min(e, hi)
            if a >= b:
                continue
            if a > pos:
                yield from self.gap_piece(image, m, pos, a)
            if m.is_file:
                yield from self.segment_pieces(image, seg, m, a, b)
            elif seg.flags & PF_W:
                bss = max(a, bias + seg.vaddr + seg.filesz)
                if bss < b:
                    yield from self.segment_pieces(image, seg, m, bss, b)
            pos = b
        if pos < e:
            yield from self.gap_piece(image, m, pos, e)

    def gap_piece(self, image: LoadedImage, m: Mapping, a: int, b: int) -> Iterator[_Piece]:
        # glibc maps the whole span of a library, then makes holes between
        # segments PROT_NONE (elf/dl-map-segments.h).
        if m.is_file or m.perms[:3] == "---":
            yield a, b, _Label("mmap", Detail.SEGMENT_GAP, image.path)

    def segment_pieces(
        self, image: LoadedImage, seg: Segment, m: Mapping, a: int, b: int
    ) -> Iterator[_Piece]:
        bias, layout = image.bias, image.layout
        obj = image.path

        def label(kind: str, detail: Detail, start: int, end: int) -> _Label:
            if not self.sections:
                return _Label(kind, detail, obj)
            names = tuple(s.name for s in layout.sections_between(start - bias, end - bias))
            return _Label(kind, detail, obj, names)

        if seg.flags & PF_X:
            # Code, and whatever read-only data shares its segment: cut where the
            # sections say, byte-exact.  The mapping stays r-x throughout.
            for lo, hi, kind, detail in self.code_runs(layout, seg):
                start, end = max(a, bias + lo), min(b, bias + hi)
                if start < end:
                    yield start, end, label(kind, detail, start, end)
            return
        if not seg.flags & PF_W:
            detail = (
                Detail.ELF_HEADERS
                if self.holds_headers(image, seg, a, b)
                else Detail.READ_ONLY_DATA
            )
            yield a, b, label("rodata", detail, a, b)
            return
        # A writable segment: file bytes then zero-fill (bss), cut at p_filesz exactly.
        file_end = bias + seg.vaddr + seg.filesz
        writable = "w" in m.perms
        if a < file_end:
            end = min(b, file_end)
            if writable:
                yield a, end, label("data", Detail.DATA, a, end)
            elif layout.relro is not None:
                yield a, end, label("rodata", Detail.RELRO, a, end)
            else:
                yield a, end, label("data", Detail.DATA_MADE_READ_ONLY, a, end)
        if b > file_end:
            start = max(a, file_end)
            if writable:
                detail = Detail.BSS_FILE_PAGE if m.is_file else Detail.BSS
                yield start, b, label("bss", detail, start, b)
            else:
                # Zero-fill made read-only: a linker's RELRO padding (lld .relro_padding).
                yield start, b, label("rodata", Detail.RELRO, start, b)

    def holds_headers(self, image: LoadedImage, seg: Segment, a: int, b: int) -> bool:
        """Whether [a, b) holds file offset 0: the ELF header and program headers."""
        if seg.offset >= self.page:
            return False
        header = image.bias + seg.vaddr - seg.offset
        return a <= header < b

    def code_runs(self, layout: ElfLayout, seg: Segment) -> list[tuple[int, int, str, Detail]]:
        """An executable segment's pages, as (start, end, kind, detail) in file addresses.

        With -z noseparate-code, with gold's default layout and in Go binaries,
        the ELF headers, .rodata, .eh_frame and the dynamic linker's tables share
        the r-x segment with .text.  The lesson's kind is what the bytes are:
        sections with SHF_EXECINSTR are text, other allocated ones rodata; a run
        of one kind reaches from its first section to the next run's first (the
        padding after a section is its own), and bytes before the first section
        are the ELF headers when the segment holds file offset 0.  Without
        section headers, or in a segment also writable, it is all text.
        """
        key = (id(layout), seg)
        runs = self._code_runs.get(key)
        if runs is not None:
            return runs
        page = self.page
        lo, hi = align_down(seg.vaddr, page), align_up(seg.vaddr + seg.memsz, page)
        headers = seg.offset < page and lo <= seg.vaddr - seg.offset < hi
        sections = sorted(
            layout.sections_between(seg.vaddr, seg.vaddr + seg.memsz), key=lambda s: s.addr
        )
        if not sections or seg.flags & PF_W:
            detail = Detail.CODE_WITH_DATA if headers and not seg.flags & PF_W else Detail.CODE
            runs = [(lo, hi, "text", detail)]
        else:
            runs = []
            start = lo
            if headers and sections[0].addr > lo and sections[0].flags & SHF_EXECINSTR:
                runs.append((lo, sections[0].addr, "rodata", Detail.EXEC_ELF_HEADERS))
                start = sections[0].addr
            for section in sections:
                code = bool(section.flags & SHF_EXECINSTR)
                if runs and (runs[-1][2] == "text") == code:
                    continue  # the same run goes on
                if runs:
                    start = max(section.addr, start)
                    runs[-1] = (runs[-1][0], start, runs[-1][2], runs[-1][3])
                if code:
                    runs.append((start, hi, "text", Detail.CODE))
                elif headers and not runs:
                    runs.append((start, hi, "rodata", Detail.EXEC_ELF_HEADERS))
                else:
                    runs.append((start, hi, "rodata", Detail.EXEC_READ_ONLY_DATA))
            runs = [r for r in runs if r[0] < r[1]]
        self._code_runs[key] = runs
        return runs

    # --- binaries whose ELF headers could not be read -------------------------------

    def claim_unreadable_binaries(self) -> None:
        """Mappings of files procmap could not read: by names and permissions.

        A file with an executable mapping is taken for a loaded binary: its r-x
        mappings are text, r-- rodata, rw- data, and an anonymous rw-p mapping
        right after its last writable mapping is bss.
        """
        groups: dict[FileKey, list[int]] = {}
        for i, m in enumerate(self.maps):
            if m.inode and m.path and m.path[0] == "/" and m.file_key not in self.layouts:
                groups.setdefault(m.file_key, []).append(i)
        unreadable = []
        for indexes in groups.values():
            if not any("x" in self.maps[i].perms for i in indexes):
                continue
            path = strip_deleted(self.maps[indexes[0]].path or "")
            why = self.unreadable.get(self.maps[indexes[0]].file_key)
            unreadable.append(f"{path}: {why}" if why else path)
            for i in indexes:
                m = self.maps[i]
                if not self.unclaimed(i):
                    continue
                kind = "text" if "x" in m.perms else "data" if "w" in m.perms else "rodata"
                detail = {"text": Detail.CODE, "data": Detail.DATA, "rodata": Detail.READ_ONLY_DATA}
                self.claim(i, m.start, m.end, _Label(kind, detail[kind], path, (), True))
                nxt = i + 1
                if (
                    kind == "data"
                    and nxt < len(self.maps)
                    and self.maps[nxt].is_anonymous
                    and self.maps[nxt].start == m.end
                    and self.maps[nxt].perms == "rw-p"
                ):
                    self.claim(
                        nxt, m.end, self.maps[nxt].end, _Label("bss", Detail.BSS, path, (), True)
                    )
        if unreadable:
            shown = "; ".join(unreadable[:3]) + (" ..." if len(unreadable) > 3 else "")
            self.warnings.append(
                f"ELF headers unreadable for {len(unreadable)} file(s) ({shown}): "
                "their regions are classified by names and permissions"
            )

    # --- 2. thread stacks from stack pointers ------------------------------------

    def claim_thread_stacks(self) -> set[int]:
        """Claim each thread's stack (and the guard below it) from its stack pointer.

        Returns the indexes of mappings that hold a live thread's stack pointer.
        """
        stacked: set[int] = set()
        for tid, sp in sorted(self.facts.thread_sps.items()):
            i = self.index_at(sp)
            if i is None:
                continue
            m = self.maps[i]
            if self.overflowed_into_guard(i, sp):
                i, m = i + 1, self.maps[i + 1]  # the thread's stack is the one above
            stacked.add(i)
            if m.path is not None or "w" not in m.perms or not self.unclaimed(i):
                continue  # [stack], or a stack inside memory already classified
            self.claim_stack(i, tid, Detail.THREAD_STACK, heuristic=False, sp=sp)
        return stacked

    def overflowed_into_guard(self, i: int, sp: int) -> bool:
        """The stack pointer is in the guard below a thread's stack: it overflowed.

        A thread stopped as its stack overflows (procmap run, a core) has its
        stack pointer just inside the PROT_NONE guard, under the read-write stack.
        """
        m = self.maps[i]
        if not (m.is_anonymous and m.perms == "---p" and i + 1 < len(self.maps)):
            return False
        above = self.maps[i + 1]
        return (
            above.start == m.end
            and above.is_anonymous
            and above.perms == "rw-p"
            and sp >= m.end - _MAX_GUARD_PAGES * self.page
        )

    def claim_stack(
        self, i: int, tid: int | None, detail: Detail, heuristic: bool, sp: int | None = None
    ) -> None:
        m = self.maps[i]
        end = m.end
        guard = self.guard_below(i)
        size = self.facts.thread_stack_size
        # glibc maps guard + stack in one block; the stack part may have merged with
        # an anonymous mapping above it, which then starts at guard end + stack size.
        if guard is not None and size and m.start + size < m.end:
            if sp is None or sp < m.start + size:
                end = m.start + size
                heuristic = True
        self.claim(i, m.start, end, _Label("stack", detail, None, (), heuristic, tid))
        if guard is not None:
            g = self.maps[guard]
            gstart = self.free_tail(guard)
            if g.end - gstart > _MAX_GUARD_PAGES * self.page:
                # Merged with some other reservation: glibc's default guard is one page.
                gstart, heuristic = g.end - self.page, True
            self.claim(
                guard, gstart, g.end, _Label("stack", Detail.GUARD_PAGE, None, (), heuristic, tid)
            )

    def guard_below(self, i: int) -> int | None:
        if i == 0:
            return None
        g = self.maps[i - 1]
        if g.is_anonymous and g.perms == "---p" and g.end == self.maps[i].start:
            return i - 1
        return None

    # --- 3. glibc malloc arenas ------------------------------------------------------

    def claim_arenas(self) -> None:
        """glibc's per-thread arenas: HEAP_MAX_SIZE-aligned anonymous reservations.

        glibc (malloc/arena.c, new_heap) reserves HEAP_MAX_SIZE (64 MiB on 64-bit,
        2 * DEFAULT_MMAP_THRESHOLD_MAX; 1 MiB on 32-bit) aligned to its own size,
        makes the used part read-write and leaves the rest PROT_NONE: an rw-p
        mapping starting on the alignment, then ---p up to the next one.
        """
        heap_max = 64 << 20 if self.facts.pointer_size == 8 else 1 << 20
        maps = self.maps
        for i in range(1, len(maps)):
            m = maps[i]
            if m.perms != "---p" or m.path is not None or m.inode:
                continue
            prev = maps[i - 1]
            if not prev.is_anonymous:
                continue
            if prev.perms != "rw-p" or prev.end != m.start:
                continue
            arena = align_down(m.start - 1, heap_max)
            if arena < prev.start or arena + heap_max > m.end:
                continue
            if self.claim(i - 1, arena, m.start, _ARENA):
                self.claim(i, m.start, arena + heap_max, _ARENA_RESERVE)
        for i, m in enumerate(maps):
            # An arena heap grown to its full size has no PROT_NONE part left.
            if m.start % heap_max == 0 and m.perms == "rw-p" and m.is_anonymous:
                if m.size == heap_max and self.unclaimed(i):
                    self.claim(i, m.start, m.end, _ARENA)

    # --- 4. thread stacks by shape ---------------------------------------------------

    def claim_stacks_by_shape(self, stacked: set[int]) -> None:
        """An rw-p block right above a small ---p guard: glibc's thread stack shape.

        Used only for threads whose stack pointer could not be read; when every
        thread's stack is known, the same shape is an unused (cached) stack.
        """
        unknown = len(self.facts.unknown_threads)
        for i, m in enumerate(self.maps):
            if m.perms != "rw-p" or m.path is not None or m.inode or i == 0:
                continue
            if i in stacked or not self.unclaimed(i):
                continue
            guard = self.guard_below(i)
            if guard is None:
                continue
            # The ---p below may be an arena's reserve too: only its free top is a guard.
            free = self.maps[guard].end - self.free_tail(guard)
            if not 0 < free <= _MAX_GUARD_PAGES * self.page:
                continue
            if unknown:
                self.claim_stack(i, None, Detail.THREAD_STACK_BY_SHAPE, heuristic=True)
            else:
                self.claim(i, m.start, m.end, _Label("mmap", Detail.STACK_SHAPED, None, (), True))

    # --- 5. everything else ----------------------------------------------------------

    def generic(self, i: int, m: Mapping) -> _Label:
        path = m.path
        if path is None:
            if m.perms[:3] == "---":
                return _RESERVED
            return _SHARED_ANONYMOUS if m.perms[3] == "s" else _ANONYMOUS
        if path.startswith("["):
            return self.brk_heap if path == "[heap]" else _kernel_named(path)
        base = strip_deleted(path)
        if base.startswith("/memfd:"):
            return _Label("mmap", Detail.MEMFD)
        if base.startswith("/SYSV"):
            return _Label("mmap", Detail.SYSV_SHM)
        if base == "/dev/zero":
            return _SHARED_ANONYMOUS
        if base == "/anon_hugepage":
            # mmap(MAP_ANONYMOUS | MAP_HUGETLB): the kernel backs it with an unlinked
            # file of this name on its internal hugetlbfs mount (HUGETLB_ANON_FILE).
            return _HUGE_SHARED_ANONYMOUS if m.perms[3] == "s" else _HUGE_ANONYMOUS
        if base.startswith("/dev/shm/"):
            return _Label("mmap", Detail.POSIX_SHM)
        if base.startswith("/dev/hugepages/"):
            # Where systemd mounts hugetlbfs: files, not devices.
            return _Label("mmap", Detail.HUGETLBFS_FILE)
        if base.startswith("/dev/"):
            return _Label("mmap", Detail.DEVICE)
        if self.layouts.get(m.file_key) is not None:
            return _Label("mmap", Detail.ELF_AS_DATA)
        return _Label("mmap", Detail.SHARED_FILE if m.perms[3] == "s" else Detail.FILE)


_new_region = tuple.__new__
_RESERVED = _Label("mmap", Detail.RESERVED)
_ANONYMOUS = _Label("mmap", Detail.ANONYMOUS)
_SHARED_ANONYMOUS = _Label("mmap", Detail.SHARED_ANONYMOUS)
_HUGE_ANONYMOUS = _Label("mmap", Detail.HUGE_ANONYMOUS)
_HUGE_SHARED_ANONYMOUS = _Label("mmap", Detail.HUGE_SHARED_ANONYMOUS)
_ARENA = _Label("heap", Detail.MALLOC_ARENA, None, (), True, None, "glibc")
_ARENA_RESERVE = _Label("heap", Detail.MALLOC_ARENA_RESERVE, None, (), True, None, "glibc")

# A ---p mapping right below a thread stack larger than this is more than a guard.
_MAX_GUARD_PAGES = 16
# glibc allows 16 link namespaces (DL_NNS), so at most 16 copies of one file loaded.
_MAX_COPIES = 16
# Real files have one or two segments over any file offset; hostile ones, thousands.
_MAX_SEGMENTS_PER_OFFSET = 8


def _loads_by_offset(layout: ElfLayout, page: int) -> list[tuple[int, Segment]]:
    """(page-aligned file offset, segment) for the PT_LOADs with file bytes, sorted."""
    return sorted(
        ((align_down(seg.offset, page), seg) for seg in layout.loads if seg.filesz),
        key=lambda item: item[0],
    )


class _LoadIndex(NamedTuple):
    """A file's PT_LOADs, ordered by address, for finding those that meet a range."""

    ordered: list[Segment]
    starts: list[int]  # each one's first page
    # reach[k]: the highest page end among the first k+1 segments.  Monotonic even
    # when segments overlap, so a bisect skips every segment that ends before lo.
    reach: list[int]

    @classmethod
    def build(cls, layout: ElfLayout, page: int) -> _LoadIndex:
        ordered = sorted(layout.loads, key=lambda seg: seg.vaddr)
        reach, top = [], 0
        for seg in ordered:
            top = max(top, align_up(seg.vaddr + seg.memsz, page))
            reach.append(top)
        return cls(ordered, [align_down(seg.vaddr, page) for seg in ordered], reach)

    def near(self, lo: int, hi: int) -> list[Segment]:
        """The PT_LOADs whose pages meet file addresses [lo, hi), in address order."""
        first = bisect.bisect_right(self.reach, lo)
        last = bisect.bisect_left(self.starts, hi)
        return self.ordered[first:last]


_KERNEL_NAMES = {
    "[heap]": _Label("heap", Detail.BRK_HEAP),
    "[stack]": _Label("stack", Detail.MAIN_STACK),
    "[vsyscall]": _Label("kernel", Detail.VSYSCALL),
    "[vdso]": _Label("mmap", Detail.VDSO),
    "[vvar]": _Label("mmap", Detail.VVAR),
    # [vvar_vclock] appears from Linux 6.13, split out of [vvar].
    "[vvar_vclock]": _Label("mmap", Detail.VVAR_VCLOCK),
    "[uprobes]": _Label("mmap", Detail.UPROBES),
    "[sigpage]": _Label("mmap", Detail.SIGPAGE),
    "[vectors]": _Label("kernel", Detail.VECTORS),
}


def _kernel_named(path: str) -> _Label:
    known = _KERNEL_NAMES.get(path)
    if known is not None:
        return known
    if path.startswith("[stack:"):
        # Linux 3.4 to 4.4 named thread stacks [stack:TID] in /proc/PID/maps.
        tid = path[7:-1]
        return _Label("stack", Detail.THREAD_STACK, tid=int(tid) if tid.isdigit() else None)
    if path.startswith("[anon:"):
        # prctl(PR_SET_VMA_ANON_NAME), Linux 5.17.  glibc 2.40 names its own
        # mappings when glibc.mem.decorate_maps is set.
        glibc = path[6:-1].strip()
        if glibc.startswith("glibc: malloc arena"):
            return _Label("heap", Detail.MALLOC_ARENA, allocator="glibc")
        if glibc.startswith("glibc: pthread stack guard"):
            return _Label("stack", Detail.GUARD_PAGE)
        if glibc.startswith("glibc: pthread stack"):
            return _Label("stack", Detail.THREAD_STACK)
        return _Label("mmap", Detail.NAMED_ANONYMOUS)
    if path.startswith("[anon_shmem:"):
        return _Label("mmap", Detail.NAMED_SHARED_ANONYMOUS)
    return _Label("mmap", Detail.KERNEL_NAMED)  # an unknown kernel name, shown as it is
