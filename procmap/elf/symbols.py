"""ELF symbol tables: nearest-symbol lookup for `where`, full entries for `explain`.

Read with one bulk unpack per table, only when asked: pyelftools takes ~20 us
a symbol, this ~1 us, which matters for a library with 50,000 of them.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Set
from typing import NamedTuple

from ..files import open_regular, shown_path
from .layout import (
    SHN_ABS,
    SHN_UNDEF,
    SHT_DYNSYM,
    SHT_NOBITS,
    SHT_SYMTAB,
    STB_GLOBAL,
    STB_GNU_UNIQUE,
    STB_LOCAL,
    STB_WEAK,
    STT_FILE,
    STT_FUNC,
    STT_GNU_IFUNC,
    STT_NOTYPE,
    STT_OBJECT,
    ElfLayout,
    Reader,
    Section,
    c_string,
    string_reader,
)


class Symbol(NamedTuple):
    name: str
    value: int
    size: int
    type: int  # STT_*


def _value(s: Symbol) -> int:
    return s.value


class SymbolTable(NamedTuple):
    """Functions and objects of one ELF file, sorted for nearest-symbol lookup.

    Made with SymbolTable.build(), which sorts them.
    """

    symbols: list[Symbol]  # by value, the larger first among equal values
    source: str | None  # ".symtab", ".dynsym" or None

    @classmethod
    def build(cls, symbols: list[Symbol], source: str | None) -> SymbolTable:
        return cls(sorted(symbols, key=lambda s: (s.value, -s.size)), source)

    def lookup(self, vaddr: int) -> tuple[Symbol, int] | None:
        """The symbol at or nearest below `vaddr` (file addresses), with the offset."""
        symbols = self.symbols
        i = bisect.bisect_right(symbols, vaddr, key=_value) - 1
        if i < 0:
            return None
        # Among symbols at the same value, prefer one whose extent covers vaddr.
        best = symbols[i]
        j = i
        while j >= 0 and symbols[j].value == best.value:
            if symbols[j].value + symbols[j].size > vaddr:
                best = symbols[j]
            j -= 1
        return best, vaddr - best.value


def read_symbols(path: str | bytes, layout: ElfLayout | None = None) -> SymbolTable:
    """Functions and objects from .symtab, or .dynsym when the file is stripped."""
    fd = open_regular(path)
    try:
        return read_symbols_fd(fd, shown_path(path), layout)
    finally:
        os.close(fd)


def read_symbols_fd(fd: int, name: str = "file", layout: ElfLayout | None = None) -> SymbolTable:
    reader = Reader(fd, os.fstat(fd).st_size, name)
    layout = reader.layout() if layout is None else layout
    for wanted, source in ((SHT_SYMTAB, ".symtab"), (SHT_DYNSYM, ".dynsym")):
        table = next((s for s in layout.sections if s.type == wanted), None)
        if table is not None:
            return SymbolTable.build(_read_symbol_table(reader, layout, table), source)
    return SymbolTable([], None)


def _symbol_table_bytes(
    reader: Reader, layout: ElfLayout, table: Section
) -> tuple[bytes, bytes, struct.Struct]:
    """(string table, symbol table bytes, entry struct) of one symbol table section."""
    # Section indexes count the null section, which layout.sections leaves out.
    if not (0 < table.link <= len(layout.sections)):
        raise reader.corrupt(f"{table.name} names no string table")
    strtab = layout.sections[table.link - 1]
    if strtab.type == SHT_NOBITS:
        raise reader.corrupt(f"the string table of {table.name} has no bytes in the file")
    strings = reader.read(strtab.offset, strtab.size, f"the strings of {table.name}")
    if table.type == SHT_NOBITS:
        raise reader.corrupt(f"{table.name} has no bytes in the file")
    data = reader.read(table.offset, table.size, table.name)
    e = "<" if layout.endian == "little" else ">"
    st = struct.Struct(e + ("IBBHQQ" if layout.elf_class == 64 else "IIIBBH"))
    return strings, data, st


def _read_symbol_table(reader: Reader, layout: ElfLayout, table: Section) -> list[Symbol]:
    strings, data, st = _symbol_table_bytes(reader, layout, table)
    symbols = []
    usable = len(data) - len(data) % st.size
    for fields in st.iter_unpack(data[:usable]):
        if layout.elf_class == 64:
            name, info, _other, shndx, value, size = fields
        else:
            name, value, size, info, _other, shndx = fields
        kind = info & 0xF
        if kind not in _LOOKUP_TYPES or not name:
            continue
        if shndx in (SHN_UNDEF, SHN_ABS) or value == 0:
            continue
        symbols.append(Symbol(c_string(strings, name), value, size, kind))
    return symbols


SYMBOL_TYPES = {STT_OBJECT: "object", STT_FUNC: "function", STT_GNU_IFUNC: "ifunc"}
SYMBOL_BINDS = {
    STB_LOCAL: "local",
    STB_GLOBAL: "global",
    STB_WEAK: "weak",
    STB_GNU_UNIQUE: "unique",
}


class SymbolEntry(NamedTuple):
    """A defined function or object, as the symbol table describes it."""

    name: str
    value: int
    size: int
    type: int  # STT_OBJECT, STT_FUNC or STT_GNU_IFUNC
    bind: int  # STB_*
    shndx: int  # index of its section, counting the null section; or SHN_ABS, SHN_COMMON
    file: str | None = None  # for a local symbol, the source file named before it (STT_FILE)
    # Defined here under a version of a library this file needs: a copy relocation,
    # the library's variable (stdout, optarg) copied into the program's bss.
    # .symtab says so in the name ("stdout@GLIBC_2.2.5"), .dynsym through .gnu.version.
    copied: bool = False

    @property
    def type_name(self) -> str:
        return SYMBOL_TYPES.get(self.type, str(self.type))

    @property
    def bind_name(self) -> str:
        return SYMBOL_BINDS.get(self.bind, str(self.bind))


def read_symbol_entries_fd(
    fd: int, layout: ElfLayout, name: str = "file", warnings: list[str] | None = None
) -> tuple[str | None, list[SymbolEntry]]:
    """The defined objects and functions of .symtab, or of .dynsym when stripped.

    Returns the table's name (None when the file has neither) and its entries in
    table order.  One bulk unpack per table: pyelftools takes ~20 us a symbol,
    this ~1 us, which matters for a library with 50,000 of them.
    """
    reader = Reader(fd, os.fstat(fd).st_size, name, warnings)
    for wanted, source in ((SHT_SYMTAB, ".symtab"), (SHT_DYNSYM, ".dynsym")):
        table = next((s for s in layout.sections if s.type == wanted), None)
        if table is None:
            continue
        strings, data, st = _symbol_table_bytes(reader, layout, table)
        if len(data) % st.size:
            reader.warn(
                f"{source} is {len(data)} bytes, not a whole number of {st.size}-byte "
                f"entries: the last {len(data) % st.size} bytes are ignored"
            )
        is64 = layout.elf_class == 64
        name_at = string_reader(strings)
        copies = _needed_versions(reader, layout) if wanted == SHT_DYNSYM else None
        entries: list[SymbolEntry] = []
        append = entries.append
        usable = len(data) - len(data) % st.size
        file = None
        unnamed = 0
        for index, fields in enumerate(st.iter_unpack(data[:usable])):
            if is64:
                st_name, info, _other, shndx, value, size = fields
            else:
                st_name, value, size, info, _other, shndx = fields
            kind = info & 0xF
            if kind not in _ENTRY_TYPES or shndx == SHN_UNDEF:
                if kind == STT_FILE:
                    file = name_at(st_name)
                continue  # not code or data, or defined in another file (an import)
            bind = info >> 4
            if st_name >= len(strings):
                unnamed += 1
            symbol_name = name_at(st_name)
            if copies:
                copied = index < len(copies[0]) and copies[0][index] & 0x7FFF in copies[1]
            else:
                copied = "@" in symbol_name
            append(
                SymbolEntry(
                    symbol_name,
                    value,
                    size,
                    kind,
                    bind,
                    shndx,
                    file if bind == STB_LOCAL else None,
                    copied,
                )
            )
        if unnamed:
            reader.warn(f"{unnamed} symbol name(s) in {source} point past its string table")
        return source, entries
    return None, []


_ENTRY_TYPES = frozenset((STT_OBJECT, STT_FUNC, STT_GNU_IFUNC))
SHT_GNU_VERNEED, SHT_GNU_VERSYM = 0x6FFFFFFE, 0x6FFFFFFF


def _needed_versions(reader: Reader, layout: ElfLayout) -> tuple[tuple[int, ...], set[int]] | None:
    """(version index of each .dynsym entry, the indexes that name a needed library's
    versions), or None when the file has no symbol versions."""
    versym = next((s for s in layout.sections if s.type == SHT_GNU_VERSYM), None)
    verneed = next((s for s in layout.sections if s.type == SHT_GNU_VERNEED), None)
    if versym is None or verneed is None:
        return None
    e = "<" if layout.endian == "little" else ">"
    raw = reader.read(versym.offset, versym.size - versym.size % 2, ".gnu.version")
    indexes = struct.unpack(f"{e}{len(raw) // 2}H", raw)
    data = reader.read(verneed.offset, verneed.size, ".gnu.version_r")
    need, aux = struct.Struct(e + "HHIII"), struct.Struct(e + "IHHII")
    needed: set[int] = set()
    pos, seen = 0, 0
    while pos + need.size <= len(data) and seen < 1 << 12:  # a cycle cannot loop forever
        _version, count, _file, aux_off, next_off = need.unpack_from(data, pos)
        a = pos + aux_off
        for _ in range(min(count, 1 << 12)):
            if a + aux.size > len(data):
                break
            _hash, _flags, other, _name, aux_next = aux.unpack_from(data, a)
            needed.add(other & 0x7FFF)
            if not aux_next:
                break
            a += aux_next
        if not next_off:
            break
        pos += next_off
        seen += 1
    return indexes, needed


# Symbols worth naming an address after: code, data, and untyped labels (_start,
# _end...) that assemblers leave; not files, sections or TLS offsets.
_LOOKUP_TYPES = frozenset((STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_GNU_IFUNC))


def defined_names(
    fd: int, layout: ElfLayout, names: frozenset[str], name: str = "file"
) -> frozenset[str]:
    """Which of `names` the file defines (a symbol with a section), in .dynsym or .symtab.

    For telling which allocator a file holds, once per file.  .dynsym is asked
    through its GNU hash table, as the dynamic linker asks it: a few small
    reads per name.  .symtab, only where .dynsym defines none of them (a
    program that links an allocator in without exporting it), has no index:
    a name missing from its strings is rejected by one bytes search, so a
    file with none of them costs one read and no unpacking.  (The search is
    for the name's end: a linker stores "malloc" as the tail of
    "__libc_malloc" when both are there.)
    """
    reader = Reader(fd, os.fstat(fd).st_size, name)
    found: set[str] = set()
    hashed = _gnu_hashes(layout)
    # The exported symbols first; the full table (often many MiB of names, in an
    # unstripped file) only where those told nothing.
    tables = sorted(
        (s for s in layout.sections if s.type in (SHT_SYMTAB, SHT_DYNSYM)),
        key=lambda s: s.type != SHT_DYNSYM,
    )
    for table in tables:
        if table.type == SHT_SYMTAB and found:
            break
        if not (0 < table.link <= len(layout.sections)):
            continue
        index = hashed.get(id(table))
        if index is not None:  # the dynamic linker's own way: a few small reads per name
            found |= _hash_defines(reader, layout, table, index, names - found)
            continue
        strtab = layout.sections[table.link - 1]
        if strtab.type == SHT_NOBITS or table.type == SHT_NOBITS:
            continue
        strings = reader.read(strtab.offset, strtab.size, f"the strings of {table.name}")
        present = {n for n in names - found if n.encode() + b"\0" in strings}
        if not present:
            continue
        _, data, st = _symbol_table_bytes(reader, layout, table)
        wanted = {n.encode() for n in present}
        for fields in st.iter_unpack(data[: len(data) - len(data) % st.size]):
            if layout.elf_class == 64:
                offset, _info, _other, shndx = fields[:4]
            else:
                offset, shndx = fields[0], fields[5]
            if shndx == SHN_UNDEF or not offset:
                continue
            end = strings.find(b"\0", offset)
            if strings[offset:end] in wanted:
                found.add(strings[offset:end].decode())
    return frozenset(found)


SHT_GNU_HASH = 0x6FFFFFF6


def _gnu_hashes(layout: ElfLayout) -> dict[int, Section]:
    """The .gnu.hash section of each symbol table that has one, by id of the table."""
    out: dict[int, Section] = {}
    for s in layout.sections:
        if s.type == SHT_GNU_HASH and 0 < s.link <= len(layout.sections):
            table = layout.sections[s.link - 1]
            if table.type == SHT_DYNSYM:
                out[id(table)] = s
    return out


def gnu_hash(name: bytes) -> int:
    """The GNU symbol hash (dl_new_hash): h = h * 33 + c from 5381, in 32 bits."""
    h = 5381
    for c in name:
        h = (h * 33 + c) & 0xFFFFFFFF
    return h


def _hash_defines(
    reader: Reader, layout: ElfLayout, table: Section, index: Section, names: Set[str]
) -> set[str]:
    """Which of `names` the symbol table defines, looked up through its GNU hash table.

    The table: nbuckets, symoffset, bloom words, bloom shift; the bloom filter
    (words of the class's size); the buckets; one chain word per symbol from
    symoffset, each a symbol's hash with bit 0 set on the last of its bucket.
    Most names fail the bloom filter: the header and filter are one read, and
    a name that passes costs a bucket, its chain and a string.
    """
    e = "<" if layout.endian == "little" else ">"
    word = 8 if layout.elf_class == 64 else 4
    head = reader.read(index.offset, 16, index.name)
    nbuckets, symoffset, nbloom, shift = struct.unpack(e + "4I", head)
    bloom_at = index.offset + 16
    buckets_at = bloom_at + nbloom * word
    chains_at = buckets_at + 4 * nbuckets
    if not nbuckets or not nbloom or chains_at > index.offset + index.size:
        raise reader.corrupt(f"{index.name} has an impossible header")
    bloom = struct.unpack(
        f"{e}{nbloom}{'Q' if word == 8 else 'I'}", reader.read(bloom_at, nbloom * word, index.name)
    )
    strtab = layout.sections[table.link - 1]
    st = struct.Struct(e + ("IBBHQQ" if layout.elf_class == 64 else "IIIBBH"))
    bits = word * 8
    count = table.size // st.size
    found: set[str] = set()
    for name in names:
        encoded = name.encode()
        h = gnu_hash(encoded)
        mask = bloom[(h // bits) % nbloom]
        if not (mask >> (h % bits)) & (mask >> ((h >> shift) % bits)) & 1:
            continue
        (i,) = struct.unpack(e + "I", reader.read(buckets_at + 4 * (h % nbuckets), 4, index.name))
        while symoffset <= i < count:
            (chained,) = struct.unpack(
                e + "I", reader.read(chains_at + 4 * (i - symoffset), 4, index.name)
            )
            if (chained | 1) == (h | 1):
                fields = st.unpack(reader.read(table.offset + i * st.size, st.size, table.name))
                offset, shndx = (fields[0], fields[3]) if word == 8 else (fields[0], fields[5])
                if offset + len(encoded) < strtab.size and shndx != SHN_UNDEF:
                    at = strtab.offset + offset
                    if reader.read(at, len(encoded) + 1, strtab.name) == encoded + b"\0":
                        found.add(name)
                        break
            if chained & 1:
                break
            i += 1
    return found
