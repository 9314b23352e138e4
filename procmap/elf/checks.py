"""Program headers that lie, and what the loaders really do with them.

`load_findings(layout, page, loader)` checks a file's PT_LOAD headers the way
the loader that maps it does, and says, for each problem, whether that loader
refuses the file or loads it anyway (and how).  Each finding has a stable key
that code decides on; its text is for people.

What the loaders do was read in their sources and seen on Linux 6.18 and glibc
2.36 (tests/integration/test_explain_lies.py runs every claim):

- The kernel (fs/binfmt_elf.c, load_elf_binary) reads the program header table
  first: larger than 64 KiB, execve() fails with ENOEXEC.  It then passes the
  point of no return (begin_new_exec) and maps each PT_LOAD in header order:
  the first with MAP_FIXED_NOREPLACE (ET_EXEC), every later one with MAP_FIXED,
  so a later segment replaces an earlier one where they share pages.  After
  each mapping it checks `p_filesz > p_memsz || p_memsz > TASK_SIZE ||
  TASK_SIZE - p_memsz < p_vaddr`; an mmap() that fails (an offset not congruent
  to the address modulo the page size: EINVAL; zero-fill beyond TASK_SIZE:
  ENOMEM) or a check that fails kills the process with SIGSEGV before its
  first instruction.  Since Linux 5.18 total_mapping_size() takes the lowest
  and highest PT_LOAD, so their order does not matter.  Nothing checks p_offset
  against the file's size: pages past its end are mapped, and touching one
  raises SIGBUS (the kernel itself touches the page it zeroes after a writable
  segment's file bytes: that fault kills the exec).
- glibc's ld.so (elf/dl-load.c, _dl_map_object_from_fd; elf/dl-map-segments.h)
  refuses a PT_LOAD whose address and offset differ modulo the page size ("ELF
  load command address/offset not page-aligned").  It reserves the span from
  the first PT_LOAD's page to the last one's end, in header order (a span of
  zero or less fails: "failed to map segment from shared object"), maps the
  others over it with MAP_FIXED, then zeroes each bss: it does not compare
  p_filesz with p_memsz, and its end-of-segment arithmetic wraps at 2^64.
"""

from __future__ import annotations

from typing import NamedTuple

from ..model import JSONDict
from .layout import PF_W, ElfLayout, Segment, align_down, align_up

KERNEL, DYNAMIC_LINKER = "kernel", "dynamic linker"

# The top of the user address space (TASK_SIZE) for a program of this machine and
# class, on the kernels most such machines run; others get their class's width.
_USER_TOP = {
    (62, 64): (0x7FFF_FFFF_F000, "x86-64 (4-level page tables)"),
    (62, 32): (0xFFFF_E000, "x32"),
    (3, 32): (0xFFFF_E000, "32-bit x86 on a 64-bit kernel"),
    (183, 64): (1 << 48, "AArch64 (48-bit addresses)"),
    (40, 32): (0xFFFF_F000, "32-bit ARM on a 64-bit kernel"),
}

# fs/binfmt_elf.c, load_elf_phdrs: a larger program header table fails with ENOEXEC.
_MAX_PHDRS = 65536

# How each loader refuses, in words.
_KILLED = (
    "the kernel would refuse to run this file: execve() passes the point of no return, "
    "then fails, and the process is killed with SIGSEGV before its first instruction"
)
_MAP_FAILS = 'the dynamic linker would refuse it: "failed to map segment from shared object"'


class Finding(NamedTuple):
    """One lie in the program headers, and what the loader does with it."""

    key: str  # stable: "overlapping-segments", "segment-beyond-address-space"...
    segments: tuple[int, ...]  # the program headers concerned, by index
    refused: bool  # the loader will not load the file
    loader: str  # KERNEL or DYNAMIC_LINKER: who does what the text says
    text: str  # what is wrong and what the loader does, for people

    def to_dict(self) -> JSONDict:
        return {
            "key": self.key,
            "segments": list(self.segments),
            "refused": self.refused,
            "loader": self.loader,
            "text": self.text,
        }


def user_top(layout: ElfLayout) -> tuple[int, str]:
    """(TASK_SIZE, what it is) for the file's machine and class."""
    bits = layout.elf_class
    return _USER_TOP.get((layout.machine, bits), (1 << bits, f"a {bits}-bit address space"))


def load_findings(layout: ElfLayout, page: int, loader: str) -> list[Finding]:
    """The problems of the file's PT_LOAD headers, as `loader` meets them."""
    found: list[Finding] = []
    kernel = loader == KERNEL
    table = len(layout.segments) * (56 if layout.elf_class == 64 else 32)
    if kernel and table > _MAX_PHDRS:
        found.append(
            Finding(
                "program-headers-too-large",
                (),
                True,
                loader,
                f"{len(layout.segments)} program headers ({table} bytes) exceed the kernel's "
                f"{_MAX_PHDRS // 1024} KiB limit: execve() fails (Exec format error)",
            )
        )
    numbered = [(i, s) for i, s in enumerate(layout.segments) if s in layout.loads]
    wrap = 1 << layout.elf_class
    top, where = user_top(layout)
    for i, seg in numbered:
        found.extend(_segment_findings(layout, i, seg, page, loader, top, where, wrap))
    found.extend(_overlaps(numbered, page, loader))
    found.extend(_order(numbered, page, loader, wrap))
    return found


def _segment_findings(
    layout: ElfLayout,
    i: int,
    seg: Segment,
    page: int,
    loader: str,
    top: int,
    where: str,
    wrap: int,
) -> list[Finding]:
    kernel = loader == KERNEL
    out = []
    name = f"segment {i} (LOAD)"
    if seg.filesz > seg.memsz:
        if kernel:
            how = f"{_KILLED} (the check p_filesz > p_memsz fails)"
        else:
            how = "the dynamic linker maps its p_filesz bytes anyway, and no zero-filled memory"
        out.append(
            Finding(
                "filesz-exceeds-memsz",
                (i,),
                kernel,
                loader,
                f"{name} has more bytes in the file (0x{seg.filesz:x}) than in memory "
                f"(0x{seg.memsz:x}): {how}",
            )
        )
    end = seg.vaddr + seg.memsz
    if end > top or seg.vaddr >= top:
        wraps = end >= wrap
        if kernel:
            refused, how = True, _KILLED
        elif wraps:
            refused = False
            how = (
                "the dynamic linker's arithmetic wraps around too: it loads the file, "
                "with no zero-filled memory for this segment"
            )
        else:
            refused, how = True, _MAP_FAILS
        out.append(
            Finding(
                "segment-beyond-address-space",
                (i,),
                refused,
                loader,
                f"{name} runs from 0x{seg.vaddr:x} to 0x{end:x}"
                + (f" (past 2^{wrap.bit_length() - 1})" if wraps else "")
                + f", beyond 0x{top:x}, the top of the user address space on {where}: "
                f"{how}; the plan stops at 0x{top:x}",
            )
        )
    if (seg.vaddr - seg.offset) % page and (seg.filesz or not kernel):
        how = (
            f"{_KILLED} (mmap() refuses an offset that is not page-aligned: EINVAL)"
            if kernel
            else 'the dynamic linker would refuse it: "ELF load command address/offset '
            'not page-aligned"'
        )
        out.append(
            Finding(
                "vaddr-offset-misaligned",
                (i,),
                True,
                loader,
                f"{name} puts file offset 0x{seg.offset:x} at address 0x{seg.vaddr:x}: they "
                f"differ by 0x{(seg.vaddr - seg.offset) % wrap:x}, not a multiple of the "
                f"{page}-byte page, so no mapping can do it: {how}",
            )
        )
    if seg.filesz and seg.offset + seg.filesz > layout.file_size:
        out.append(_past_end(layout, i, seg, page, loader))
    return out


def _past_end(layout: ElfLayout, i: int, seg: Segment, page: int, loader: str) -> Finding:
    kernel = loader == KERNEL
    name = f"segment {i} (LOAD)"
    data_end = seg.vaddr + seg.filesz
    # Both loaders zero the rest of the page after the file bytes; that page is past
    # the end of the file when its file offset is at or past the file's last page.
    zeroes_tail = seg.memsz > seg.filesz and data_end % page != 0
    tail_beyond = align_down(seg.offset + seg.filesz, page) >= align_up(layout.file_size, page)
    fatal = zeroes_tail and tail_beyond and (not kernel or bool(seg.flags & PF_W))
    what = (
        f"{name} takes file bytes 0x{seg.offset:x}-0x{seg.offset + seg.filesz:x}, past the "
        f"end of the file (0x{layout.file_size:x} bytes)"
    )
    if fatal and kernel:
        how = f"{_KILLED} (zeroing its bss touches a page past the end of the file: EFAULT)"
    elif fatal:
        how = (
            "the dynamic linker dies of SIGBUS as it zeroes this segment's bss, in a "
            "page past the end of the file"
        )
    else:
        loaded = "the kernel" if kernel else "the dynamic linker"
        how = f"{loaded} maps it anyway; touching a page past the end of the file raises SIGBUS"
        entry = layout.entry
        if (
            kernel
            and entry
            and seg.vaddr <= entry < data_end
            and seg.offset + (entry - seg.vaddr) >= align_up(layout.file_size, page)
        ):
            how += ", and the entry point is there: the program dies at its first instruction"
    return Finding("segment-past-end-of-file", (i,), fatal, loader, f"{what}: {how}")


def _overlaps(numbered: list[tuple[int, Segment]], page: int, loader: str) -> list[Finding]:
    """Pairs of PT_LOADs that share pages: the later one, in header order, wins there."""
    out = []
    spans = [
        (i, align_down(s.vaddr, page), align_up(s.vaddr + s.memsz, page))
        for i, s in numbered
        if s.memsz
    ]
    # Sorted by start, a segment can only meet those that start before its end.
    by_start = sorted(spans, key=lambda t: (t[1], t[0]))
    for k, (i, lo, hi) in enumerate(by_start):
        for j, lo2, hi2 in by_start[k + 1 :]:
            if lo2 >= hi:
                break
            first, second = sorted((i, j))
            a, b = max(lo, lo2), min(hi, hi2)
            who = "the kernel maps" if loader == KERNEL else "the dynamic linker maps"
            out.append(
                Finding(
                    "overlapping-segments",
                    (first, second),
                    False,
                    loader,
                    f"segments {first} and {second} (LOAD) both claim 0x{a:x}-0x{b:x}: {who} "
                    f"them in header order, segment {second} over segment {first} "
                    f"(MAP_FIXED), so segment {first}'s bytes there are not in memory",
                )
            )
        if len(out) > 64:  # a hostile file can make thousands of pairs: enough is said
            break
    return out


def _order(numbered: list[tuple[int, Segment]], page: int, loader: str, wrap: int) -> list[Finding]:
    vaddrs = [s.vaddr for _, s in numbered]
    if all(a <= b for a, b in zip(vaddrs, vaddrs[1:])):
        return []
    late = next(numbered[k + 1][0] for k in range(len(vaddrs) - 1) if vaddrs[k] > vaddrs[k + 1])
    what = (
        f"the PT_LOAD segments are not in ascending address order (segment {late} comes "
        "after a higher one), which the ELF specification requires"
    )
    if loader == KERNEL:
        refused, how = False, "the kernel maps each at its own address all the same"
    else:
        (_, first), (_, last) = numbered[0], numbered[-1]
        span = ((last.vaddr + last.memsz) % wrap) - align_down(first.vaddr, page)
        refused = span <= 0
        how = (
            "the dynamic linker reserves from the first header's page to the last header's "
            f"end, a span of {span} bytes: {_MAP_FAILS}"
            if refused
            else "the dynamic linker reserves only from the first header's page to the last "
            "header's end, and maps the segments outside that span with MAP_FIXED, over "
            "whatever the process has there"
        )
    return [Finding("segments-out-of-order", (late,), refused, loader, f"{what}: {how}")]
