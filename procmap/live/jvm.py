"""The JVM's own account of its memory, read from the live process.

HotSpot publishes its layout for debuggers (the Serviceability Agent): libjvm.so
exports gHotSpotVMStructs, a table of (type, field, type string, static,
offset, address) rows, and gHotSpotVMTypes, each type's size, with the strides
and field offsets of both tables in exported variables of their own.  From the
table procmap reads, through /proc/PID/mem:

- the Java heap's reservation, CollectedHeap::_reserved (a MemRegion), and where
  the collector keeps its generations in fixed ranges (Serial: GenCollectedHeap's
  _young_gen and _old_gen; Parallel: ParallelScavengeHeap's), their _reserved;
- the code cache's bounds, CodeCache::_low_bound and _high_bound;
- the class metadata archive (CDS), MetaspaceObj::_shared_metaspace_base and top,
  and the compressed class space the JVM reserves right after it (or at the
  compressed class pointers' base), CompressedClassSpaceSize long;
- the flags that say which collector runs and how deep the stack guard zones
  are (JVMFlag::flags).

Committed and reserved parts are told apart by the mappings' permissions:
the JVM reserves with PROT_NONE and commits by making pages read-write.

About twenty reads of the process's memory, once per read of the map.  Every
address read is checked to lie in the process's mappings and every size to be
sane; anything else gives no ranges and one warning.  JDK 17 publishes no bounds
for the non-class metaspace: it stays plain mappings.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence

from ..elf.layout import SHT_DYNSYM, ElfLayout, Reader, read_elf_fd
from ..errors import ProcmapError
from ..kernel.procfs import ProcessDir
from ..model import Detail, HeapRange, Mapping, Runtime

_WARNING = "JVM layout not read: {}; its memory is shown as plain mappings"

# The exported variables that describe the tables (vmStructs.cpp, "Exported
# fields for the Serviceability Agent").
_STRUCT_FIELDS = ("TypeName", "FieldName", "TypeString", "IsStatic", "Offset", "Address")
_TYPE_FIELDS = ("TypeName", "Size")
_SYMBOLS = frozenset(
    ["gHotSpotVMStructs", "gHotSpotVMTypes", "gHotSpotVMStructEntryArrayStride"]
    + [f"gHotSpotVMStructEntry{f}Offset" for f in _STRUCT_FIELDS]
    + ["gHotSpotVMTypeEntryArrayStride"]
    + [f"gHotSpotVMTypeEntry{f}Offset" for f in _TYPE_FIELDS]
)
_MAX_ENTRIES = 20_000  # JDK 17 has ~800 structs and ~770 types
_MAX_STRINGS = 16 << 20  # the names live in libjvm's .rodata, 2.6 MiB in JDK 17
_NAME_MAX = 128
# Flags procmap reads, and how many bytes their values take.
_FLAGS = {
    "UseSerialGC": 1,
    "UseParallelGC": 1,
    "UseG1GC": 1,
    "UseCompressedClassPointers": 1,
    "CompressedClassSpaceSize": 8,
    "StackYellowPages": 8,
    "StackRedPages": 8,
    "StackReservedPages": 8,
}
# Metaspace::reserve_alignment() in JDK 17: the class space starts on it after the archive.
_CLASS_SPACE_ALIGNMENT = 16 << 20


class _Unreadable(Exception):
    """Why the JVM's layout could not be read, in words for the warning."""


class JvmLayout:
    """What was read of one JVM: ranges, each a (start, end) pair, and flags."""

    def __init__(self) -> None:
        self.heap: tuple[int, int] | None = None
        self.young: tuple[int, int] | None = None
        self.old: tuple[int, int] | None = None
        self.code: tuple[int, int] | None = None
        self.archive: tuple[int, int] | None = None  # the CDS archive's mapped part
        self.class_space: tuple[int, int] | None = None
        self.stack_guard_pages = 0


def read_ranges(
    pd: ProcessDir, mappings: Sequence[Mapping], runtime: Runtime, warnings: list[str]
) -> list[HeapRange]:
    """The Java heap, metaspace and code cache, as the JVM itself bounds them."""
    try:
        vm = _Vm(pd, mappings, runtime)
        layout = vm.read_layout()
        return ranges_of(layout, mappings, os.sysconf("SC_PAGE_SIZE"))
    except _Unreadable as why:
        warnings.append(_WARNING.format(why))
    except (ProcmapError, OSError, struct.error, ValueError, IndexError, KeyError) as err:
        warnings.append(_WARNING.format(f"unexpected data ({type(err).__name__}: {err})"))
    return []


# --- from what was read to ranges -------------------------------------------------------


def ranges_of(layout: JvmLayout, mappings: Sequence[Mapping], page: int) -> list[HeapRange]:
    """The heap ranges of a JVM whose layout was read, and the guard zones of its Java
    threads' stacks.  Each part is committed where its mapping has any access and
    reserved where it has none, which the classifier tells at each classification
    (HeapRange.reserve): the JVM commits and uncommits its heap as it runs."""
    out: list[HeapRange] = []

    def part(
        bounds: tuple[int, int],
        kind: str,
        committed: Detail,
        reserved: Detail,
        heuristic: bool = False,
    ) -> None:
        out.append(HeapRange(*bounds, kind, committed, "jvm", heuristic, reserved))

    if layout.heap is not None:
        young, old = layout.young, layout.old
        if young is not None and old is not None:
            part(young, "heap", Detail.JAVA_HEAP_YOUNG, Detail.JAVA_HEAP_RESERVE)
            part(old, "heap", Detail.JAVA_HEAP_OLD, Detail.JAVA_HEAP_RESERVE)
        else:  # no generations of fixed bounds (G1): the heap, regions of either
            part(layout.heap, "heap", Detail.JAVA_HEAP, Detail.JAVA_HEAP_RESERVE)
    if layout.code is not None:
        part(layout.code, "text", Detail.JIT_CODE, Detail.JIT_CODE_RESERVE)
    if layout.archive is not None:
        part(layout.archive, "heap", Detail.METASPACE, Detail.JVM_RESERVE)
    if layout.class_space is not None:
        part(layout.class_space, "heap", Detail.CLASS_SPACE, Detail.JVM_RESERVE, True)
    out += stack_guards(mappings, layout.stack_guard_pages * page, page)
    return out


def stack_guards(mappings: Sequence[Mapping], zone: int, page: int) -> list[HeapRange]:
    """HotSpot's guard zones at the low end of its Java threads' stacks.

    HotSpot (stackOverflow.cpp, create_stack_guard_pages) makes the reserved,
    yellow and red zones, StackReservedPages + StackYellowPages + StackRedPages
    pages, no-access at the low end of each Java thread's stack, and asks glibc
    for no guard page of its own for those threads (os_linux.cpp,
    default_guard_size): a no-access mapping of exactly the zones' size right
    under a read-write anonymous one.  Found by that shape, so heuristic; where
    glibc's guard page sits under the zones too (a thread attached to the JVM),
    the one page below them stays glibc's guard page.
    """
    out: list[HeapRange] = []
    if zone <= 0:
        return out
    for i in range(len(mappings) - 1):
        g, above = mappings[i], mappings[i + 1]
        if g.perms != "---p" or not g.is_anonymous or g.size not in (zone, zone + page):
            continue
        if above.start == g.end and above.perms == "rw-p" and above.is_anonymous:
            out.append(
                HeapRange(g.end - zone, g.end, "stack", Detail.JAVA_STACK_GUARD, "jvm", True)
            )
    return out


# --- reading the live JVM ---------------------------------------------------------------


class _Vm:
    def __init__(self, pd: ProcessDir, mappings: Sequence[Mapping], runtime: Runtime):
        self.pd = pd
        self.maps = mappings
        self.runtime = runtime
        self.fields: dict[tuple[str, str], tuple[bool, int]] = {}  # -> (static, offset|address)
        self.sizes: dict[str, int] = {}
        self.reads = 0

    # memory

    def read(self, address: int, size: int, what: str) -> bytes:
        if not self.mapped(address, size):
            raise _Unreadable(f"{what} at 0x{address:x} is outside its mappings")
        data = self.pd.memory(address, size)
        self.reads += 1
        if data is None:
            raise _Unreadable(
                f"its memory cannot be read ({what}: /proc/{self.pd.pid}/mem needs the right "
                "to trace it: its owner or root)"
            )
        return data

    def word(self, address: int, what: str) -> int:
        return int.from_bytes(self.read(address, 8, what), "little")

    def mapped(self, address: int, size: int) -> bool:
        """Whether [address, address+size) is all readable mapped memory."""
        end = address + size
        for m in self.maps:
            if m.end <= address:
                continue
            if m.start > address or "r" not in m.perms:
                return False
            if m.end >= end:
                return True
            address = m.end
        return False

    def inside(self, bounds: tuple[int, int], what: str) -> tuple[int, int]:
        """`bounds`, checked to be a sane, page-aligned range wholly inside the mappings."""
        start, end = bounds
        if not (0 < start < end < 1 << 57) or start % 4096 or end % 4096:
            raise _Unreadable(f"{what} [0x{start:x}, 0x{end:x}) is not a range")
        pos = start
        for m in self.maps:
            if m.end <= pos:
                continue
            if m.start > pos:
                break
            pos = m.end
            if pos >= end:
                return bounds
        raise _Unreadable(f"{what} [0x{start:x}, 0x{end:x}) is not all mapped")

    # libjvm.so and its exported description of itself

    def symbols(self) -> dict[str, int]:
        """The gHotSpot* variables' run-time addresses."""
        path = self.runtime.object
        mine = [m for m in self.maps if m.path == path and m.inode]
        first = next((m for m in mine if m.offset == 0), None)
        if first is None:
            raise _Unreadable(f"{path} has no mapping of its start")
        fd, where = self.pd.open_mapped_file(first, False)
        if fd is None:
            raise _Unreadable(f"{path} cannot be opened ({where})")
        try:
            layout = read_elf_fd(fd, path)
            if layout.elf_class != 64 or layout.endian != "little" or not layout.loads:
                raise _Unreadable(f"{path} is not a 64-bit little-endian library")
            bias = first.start - (layout.loads[0].vaddr & ~0xFFF)
            found = _dynamic_symbols(fd, layout, path)
        finally:
            os.close(fd)
        missing = _SYMBOLS - found.keys()
        if missing:
            raise _Unreadable(f"{path} does not export {sorted(missing)[0]}")
        return {name: value + bias for name, value in found.items()}

    def read_tables(self) -> None:
        sym = self.symbols()
        # The strides and field offsets: 8-byte variables, in two clusters (.bss).
        values = self.words_at({n: a for n, a in sym.items() if n not in _TABLES})
        structs = self.word(sym["gHotSpotVMStructs"], "gHotSpotVMStructs")
        types = self.word(sym["gHotSpotVMTypes"], "gHotSpotVMTypes")
        s_off = [values[f"gHotSpotVMStructEntry{f}Offset"] for f in _STRUCT_FIELDS]
        t_off = [values[f"gHotSpotVMTypeEntry{f}Offset"] for f in _TYPE_FIELDS]
        rows = self.table(structs, values["gHotSpotVMStructEntryArrayStride"], s_off, "structs")
        types_rows = self.table(types, values["gHotSpotVMTypeEntryArrayStride"], t_off, "types")
        names = self.strings([p for r in rows for p in r[:3]] + [r[0] for r in types_rows])
        for type_name, field_name, _type_string, is_static, offset, address in rows:
            key = (names(type_name), names(field_name))
            static = is_static & 0xFFFFFFFF != 0
            self.fields[key] = (static, address if static else offset)
        for type_name, size in types_rows:
            self.sizes[names(type_name)] = size

    def words_at(self, addresses: dict[str, int]) -> dict[str, int]:
        """8-byte values at `addresses`, read in one go per cluster (at most 64 KiB)."""
        out: dict[str, int] = {}
        pending = sorted(addresses.items(), key=lambda kv: kv[1])
        while pending:
            lo = pending[0][1]
            cluster = [kv for kv in pending if kv[1] - lo < 1 << 16]
            pending = pending[len(cluster) :]
            hi = cluster[-1][1] + 8
            data = self.read(lo, hi - lo, "the VMStructs description")
            for name, a in cluster:
                out[name] = int.from_bytes(data[a - lo : a - lo + 8], "little")
        return out

    def table(self, start: int, stride: int, offsets: list[int], what: str) -> list[list[int]]:
        """A table's rows, up to the one whose first field (a name) is NULL."""
        if not 8 <= stride <= 256 or any(not 0 <= o <= stride - 8 for o in offsets):
            raise _Unreadable(f"the {what} table has a stride of {stride}")
        rows: list[list[int]] = []
        chunk = 512
        pos = start
        while len(rows) < _MAX_ENTRIES:
            n = chunk
            while n > 1 and not self.mapped(pos, n * stride):
                n //= 2
            data = self.read(pos, n * stride, f"the {what} table")
            for i in range(n):
                row = data[i * stride : (i + 1) * stride]
                fields = [int.from_bytes(row[o : o + 8], "little") for o in offsets]
                if fields[0] == 0:
                    return rows
                rows.append(fields)
            pos += n * stride
            chunk *= 4
        raise _Unreadable(f"the {what} table has no end")

    def strings(self, pointers: list[int]) -> Callable[[int], str]:
        """A function from a C string's address to the string (names are ASCII)."""
        live = [p for p in pointers if p]
        if not live:
            raise _Unreadable("the VMStructs table is empty")
        lo, hi = min(live), max(live) + _NAME_MAX
        if hi - lo > _MAX_STRINGS:
            raise _Unreadable("the VMStructs names are scattered over its memory")
        while not self.mapped(lo, hi - lo) and hi - _NAME_MAX > max(live):
            hi -= 8
        data = self.read(lo, hi - lo, "the VMStructs names")

        def name(p: int) -> str:
            if not p:
                return ""
            end = data.find(b"\0", p - lo, p - lo + _NAME_MAX)
            if end < 0:
                raise _Unreadable(f"a VMStructs name at 0x{p:x} has no end")
            return data[p - lo : end].decode("ascii")

        return name

    def field(self, type_name: str, field_name: str, static: bool) -> int:
        got = self.fields.get((type_name, field_name))
        if got is None or got[0] != static:
            raise _Unreadable(f"this JVM does not describe {type_name}::{field_name}")
        return got[1]

    def static_word(self, type_name: str, field_name: str) -> int:
        return self.word(self.field(type_name, field_name, True), f"{type_name}::{field_name}")

    def mem_region(self, address: int, what: str) -> tuple[int, int]:
        start_at = self.field("MemRegion", "_start", False)
        size_at = self.field("MemRegion", "_word_size", False)
        data = self.read(address, max(start_at, size_at) + 8, what)
        start = int.from_bytes(data[start_at : start_at + 8], "little")
        words = int.from_bytes(data[size_at : size_at + 8], "little")
        return self.inside((start, start + words * 8), what)

    # the layout

    def read_layout(self) -> JvmLayout:
        self.read_tables()
        flags = self.flags()
        out = JvmLayout()
        heap = self.static_word("Universe", "_collectedHeap")
        out.heap = self.mem_region(heap + self.field("CollectedHeap", "_reserved", False), "heap")
        if flags["UseSerialGC"] & 0xFF:
            # GenCollectedHeap's fields moved to SerialHeap in JDK 23 (JDK-8325104).
            owner = (
                "GenCollectedHeap"
                if ("GenCollectedHeap", "_young_gen") in self.fields
                else "SerialHeap"
            )
            young = self.word(heap + self.field(owner, "_young_gen", False), "young")
            old = self.word(heap + self.field(owner, "_old_gen", False), "old")
            reserved = self.field("Generation", "_reserved", False)
            out.young = self.mem_region(young + reserved, "the young generation")
            out.old = self.mem_region(old + reserved, "the old generation")
        elif flags["UseParallelGC"] & 0xFF:
            young = self.static_word("ParallelScavengeHeap", "_young_gen")
            old = self.static_word("ParallelScavengeHeap", "_old_gen")
            out.young = self.mem_region(
                young + self.field("PSYoungGen", "_reserved", False), "the young generation"
            )
            out.old = self.mem_region(
                old + self.field("PSOldGen", "_reserved", False), "the old generation"
            )
        for part in (out.young, out.old):
            if part is not None and not (out.heap[0] <= part[0] < part[1] <= out.heap[1]):
                raise _Unreadable("a generation lies outside the heap")
        if out.young and out.old and out.young[0] < out.old[1] and out.old[0] < out.young[1]:
            raise _Unreadable("the generations overlap")
        low = self.static_word("CodeCache", "_low_bound")
        high = self.static_word("CodeCache", "_high_bound")
        out.code = self.inside((low, high), "the code cache")
        out.archive, out.class_space = self.class_metadata(flags)
        page = os.sysconf("SC_PAGE_SIZE")
        out.stack_guard_pages = sum(
            flags[n] for n in ("StackYellowPages", "StackRedPages", "StackReservedPages")
        )
        if not 0 < out.stack_guard_pages * page <= 1 << 20:
            out.stack_guard_pages = 0
        return out

    def class_metadata(
        self, flags: dict[str, int]
    ) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """The CDS archive's mapped part and the compressed class space after it.

        JDK 17 (metaspace.cpp, MetaspaceShared::reserve_address_space_for_archives)
        reserves the archive and the class space in one piece, the class space at
        the archive's end aligned up to Metaspace::reserve_alignment(); without an
        archive the class space starts at the compressed class pointers' base.
        Where the class space is found is thus derived: it is marked heuristic,
        and claimed only where its whole size is mapped from a mapping's start.
        """
        base = self.static_word("MetaspaceObj", "_shared_metaspace_base")
        top = self.static_word("MetaspaceObj", "_shared_metaspace_top")
        archive = None
        if base and top:
            archive = self.inside((base, _align_up(top, 4096)), "the class data archive")
        if not flags["UseCompressedClassPointers"] & 0xFF:
            return archive, None
        size = flags["CompressedClassSpaceSize"]
        if archive is not None:
            start = _align_up(top, _CLASS_SPACE_ALIGNMENT)
        else:
            # CompressedKlassPointers::_narrow_klass._base became _base in JDK 21.
            base_field = "_narrow_klass._base"
            if ("CompressedKlassPointers", base_field) not in self.fields:
                base_field = "_base"
            start = self.static_word("CompressedKlassPointers", base_field)
        if not start or not 0 < size <= 1 << 35:
            return archive, None
        if not any(m.start == start for m in self.maps):
            return archive, None
        try:
            space = self.inside((start, start + size), "the class space")
        except _Unreadable:
            return archive, None
        if any(m.inode for m in self.maps if m.start < space[1] and m.end > space[0]):
            return archive, None
        if archive is not None:  # the archive's unused reserve, up to the class space
            archive = (archive[0], start)
        return archive, space

    def flags(self) -> dict[str, int]:
        """The values of _FLAGS, from JVMFlag::flags (an array of numFlags JVMFlag)."""
        array = self.static_word("JVMFlag", "flags")
        count = self.static_word("JVMFlag", "numFlags")
        size = self.sizes.get("JVMFlag", 0)
        if not 0 < count < 10_000 or not 16 <= size <= 256:
            raise _Unreadable(f"JVMFlag::flags holds {count} flags of {size} bytes")
        name_at = self.field("JVMFlag", "_name", False)
        addr_at = self.field("JVMFlag", "_addr", False)
        data = self.read(array, count * size, "JVMFlag::flags")
        entries = [
            (
                int.from_bytes(data[i * size + name_at : i * size + name_at + 8], "little"),
                int.from_bytes(data[i * size + addr_at : i * size + addr_at + 8], "little"),
            )
            for i in range(count)
        ]
        names = self.strings([p for p, _ in entries])
        where = {}
        for p, addr in entries:
            if p and names(p) in _FLAGS:
                where[names(p)] = addr
        missing = _FLAGS.keys() - where.keys()
        if missing:
            raise _Unreadable(f"this JVM has no flag {sorted(missing)[0]}")
        values = self.words_at(where)
        return {n: v & ((1 << (8 * _FLAGS[n])) - 1) for n, v in values.items()}


_TABLES = frozenset(("gHotSpotVMStructs", "gHotSpotVMTypes"))


def _align_up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def _dynamic_symbols(fd: int, layout: ElfLayout, path: str) -> dict[str, int]:
    """The values of the _SYMBOLS libjvm defines in .dynsym (what it exports)."""
    table = next((s for s in layout.sections if s.type == SHT_DYNSYM), None)
    if table is None or not 0 < table.link <= len(layout.sections):
        raise _Unreadable(f"{path} has no dynamic symbol table")
    reader = Reader(fd, os.fstat(fd).st_size, path)
    strtab = layout.sections[table.link - 1]
    strings = reader.read(strtab.offset, strtab.size, "the strings of .dynsym")
    data = reader.read(table.offset, table.size, ".dynsym")
    found: dict[str, int] = {}
    entry = struct.Struct("<IBBHQQ")
    for st_name, _info, _other, shndx, value, _size in entry.iter_unpack(
        data[: len(data) - len(data) % entry.size]
    ):
        if not shndx or st_name >= len(strings):
            continue
        end = strings.find(b"\0", st_name)
        name = strings[st_name:end].decode("ascii", "replace")
        if name in _SYMBOLS:
            found[name] = value
    return found
