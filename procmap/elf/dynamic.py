"""The dynamic section: what a file needs, and how the dynamic linker binds it."""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from .layout import (
    DF_1_NOW,
    DF_1_PIE,
    DF_BIND_NOW,
    DF_TEXTREL,
    DT_BIND_NOW,
    DT_FLAGS,
    DT_FLAGS_1,
    DT_NEEDED,
    DT_NULL,
    DT_RPATH,
    DT_RUNPATH,
    DT_SONAME,
    DT_STRSZ,
    DT_STRTAB,
    DT_TEXTREL,
    PT_DYNAMIC,
    ElfLayout,
    Reader,
    c_string,
)


class DynamicInfo(NamedTuple):
    """What PT_DYNAMIC says about how the file is linked and loaded."""

    needed: tuple[str, ...] = ()  # DT_NEEDED: the libraries the dynamic linker loads first
    soname: str | None = None
    runpath: str | None = None  # DT_RUNPATH, or the older DT_RPATH
    flags: int = 0  # DT_FLAGS
    flags_1: int = 0  # DT_FLAGS_1
    bind_now: bool = False  # every symbol resolved at start-up: what makes RELRO full
    textrel: bool = False  # code patched at load time, so text is written to

    @property
    def pie(self) -> bool:
        return bool(self.flags_1 & DF_1_PIE)


def read_dynamic_fd(
    fd: int, layout: ElfLayout, name: str = "file", warnings: list[str] | None = None
) -> DynamicInfo | None:
    """The dynamic section of the file behind `fd`, or None if it has none.

    Found through PT_DYNAMIC (section headers may be stripped); its strings
    through DT_STRTAB, a memory address turned into a file offset by the
    PT_LOAD that holds it.
    """
    seg = next((s for s in layout.segments if s.type == PT_DYNAMIC), None)
    if seg is None or seg.filesz == 0:
        return None
    reader = Reader(fd, os.fstat(fd).st_size, name, warnings)
    e = "<" if layout.endian == "little" else ">"
    st = struct.Struct(e + ("qQ" if layout.elf_class == 64 else "iI"))
    data = reader.read(seg.offset, seg.filesz, "the dynamic section")
    tags: dict[int, int] = {}
    needed_offsets: list[int] = []
    for tag, value in st.iter_unpack(data[: len(data) - len(data) % st.size]):
        if tag == DT_NULL:
            break
        if tag == DT_NEEDED:
            needed_offsets.append(value)
        else:
            tags.setdefault(tag, value)
    strings = b""
    if DT_STRTAB in tags:
        offset = _file_offset(layout, tags[DT_STRTAB])
        if offset is not None:
            size = min(tags.get(DT_STRSZ, 0), max(reader.size - offset, 0))
            strings = reader.read(offset, size, "the dynamic string table")
        else:
            reader.warn("DT_STRTAB lies in no PT_LOAD: library names are unreadable")

    def string(offset: int | None) -> str | None:
        return None if offset is None or not strings else c_string(strings, offset)

    flags, flags_1 = tags.get(DT_FLAGS, 0), tags.get(DT_FLAGS_1, 0)
    return DynamicInfo(
        needed=tuple(string(o) or "" for o in needed_offsets),
        soname=string(tags.get(DT_SONAME)),
        runpath=string(tags.get(DT_RUNPATH, tags.get(DT_RPATH))),
        flags=flags,
        flags_1=flags_1,
        bind_now=DT_BIND_NOW in tags or bool(flags & DF_BIND_NOW) or bool(flags_1 & DF_1_NOW),
        textrel=DT_TEXTREL in tags or bool(flags & DF_TEXTREL),
    )


def _file_offset(layout: ElfLayout, vaddr: int) -> int | None:
    """The file offset holding memory address `vaddr` (as linked), if a PT_LOAD maps it."""
    for seg in layout.loads:
        if seg.vaddr <= vaddr < seg.vaddr + seg.filesz:
            return seg.offset + (vaddr - seg.vaddr)
    return None
