"""ELF core files (ET_CORE), as the Linux kernel writes them: notes and memory.

A core is an ELF file with one PT_NOTE segment and one PT_LOAD per memory area
of the process (fs/binfmt_elf.c, elf_core_dump).  The notes say who died and
how: an NT_PRSTATUS per thread (its registers; the first is the thread that
dumped, so the faulting one), NT_PRPSINFO (the process's name, arguments, PID,
user), NT_SIGINFO (the siginfo_t of the fatal signal), NT_AUXV (the auxiliary
vector the kernel gave the program) and NT_FILE (which file backs each memory
area, and at which offset).  Each PT_LOAD is one memory area (a VMA) with its
permissions; its bytes are in the file only where the kernel dumped them
(p_filesz < p_memsz, often 0: file pages it can read again from the file, such
as text, are left out; see core(5) and /proc/PID/coredump_filter).

`read_core` reads the headers and notes only: a core can be gigabytes, and its
memory is read with pread, a piece at a time, when asked (`CoreDump.read`).
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

from ..arch import Arch, arch_of_machine, host_arch
from ..errors import BadCore, BadFile
from ..files import open_regular
from .layout import ET_CORE, NT_GNU_BUILD_ID, PF_R, PF_W, PF_X, PT_LOAD, PT_NOTE, describe_machine

# Note types of a Linux core (include/uapi/linux/elf.h), all with the name "CORE".
NT_PRSTATUS, NT_PRPSINFO, NT_AUXV = 1, 3, 6
NT_SIGINFO = 0x53494749  # "SIGI"
NT_FILE = 0x46494C45  # "FILE"

# include/linux/elfcore.h, struct elf_prstatus on a 64-bit machine: pr_info (3
# ints), pr_cursig (short, padded), pr_sigpend and pr_sighold (longs), pr_pid,
# pr_ppid, pr_pgrp, pr_sid (ints), four struct timevals (16 bytes each), then
# pr_reg, the elf_gregset_t: the architecture's user_regs_struct.
_PR_CURSIG, _PR_PID, _PR_REG_64 = 12, 32, 112
# struct elf_prpsinfo on a 64-bit machine: pr_state, pr_sname, pr_zomb, pr_nice
# (chars), pr_flag (long), pr_uid, pr_gid, pr_pid, pr_ppid, pr_pgrp, pr_sid (ints
# on x86-64 and arm64), pr_fname[16], pr_psargs[80].
_PRPSINFO_64 = struct.Struct("cccc4xQIIiiii16s80s")

MAX_NOTES = 64 << 20  # bytes: the notes of 100,000 threads; more is not a real core


class CoreLoad(NamedTuple):
    """A PT_LOAD of a core: one memory area of the process, and what of it was dumped."""

    vaddr: int
    memsz: int
    filesz: int  # bytes dumped (from vaddr); 0 when the kernel left the area out
    offset: int  # where they are in the core
    flags: int  # PF_R | PF_W | PF_X: the area's permissions when it died

    @property
    def end(self) -> int:
        return self.vaddr + self.memsz

    @property
    def perms(self) -> str:
        """ "r-x": the permissions, as maps prints their first three letters."""
        f = self.flags
        return ("r" if f & PF_R else "-") + ("w" if f & PF_W else "-") + ("x" if f & PF_X else "-")


class CoreFile(NamedTuple):
    """An NT_FILE entry: a memory area backed by a file."""

    start: int
    end: int
    offset: int  # the file offset of `start`, in bytes
    path: str  # as the kernel wrote it (d_path): " (deleted)" for a file gone by then


class CoreThread(NamedTuple):
    """A thread's NT_PRSTATUS."""

    tid: int
    cursig: int  # the signal it was stopped by (the fatal one for the dumping thread)
    registers: dict[str, int]  # by the names in the Arch table
    raw: bytes  # pr_reg: the user_regs_struct bytes


class CoreProcess(NamedTuple):
    """NT_PRPSINFO: who the process was."""

    pid: int
    ppid: int
    uid: int
    gid: int
    comm: str  # pr_fname: the name, 15 characters at most
    args: str  # pr_psargs: the arguments joined with spaces, cut at 80 bytes
    state: str  # pr_sname: "R", "S", "D"...


class CoreDump(NamedTuple):
    """A core file's headers and notes; its memory stays in the file (`read`)."""

    path: str
    machine: int  # e_machine
    elf_class: int  # 32 or 64
    endian: str  # "little" or "big"
    threads: tuple[CoreThread, ...]  # the first one dumped: the faulting thread
    process: CoreProcess | None
    siginfo: bytes | None  # NT_SIGINFO, a siginfo_t
    auxv: bytes  # NT_AUXV, raw (kernel.procfs.parse_auxv reads it)
    files: tuple[CoreFile, ...]  # NT_FILE
    page_size: int  # NT_FILE's
    loads: tuple[CoreLoad, ...]  # in address order
    size: int  # of the core file, in bytes
    identity: tuple[int, int]  # (st_dev, st_ino): `read` checks it is still this file
    warnings: tuple[str, ...]

    @property
    def pointer_size(self) -> int:
        return self.elf_class // 8

    @property
    def arch(self) -> Arch | None:
        return arch_of_machine(self.machine)

    @property
    def struct_endian(self) -> str:
        return "<" if self.endian == "little" else ">"

    def load_at(self, address: int) -> CoreLoad | None:
        for ld in self.loads:
            if ld.vaddr <= address < ld.end:
                return ld
        return None

    def dumped(self, address: int, size: int) -> bool:
        """Whether every byte of [address, address+size) is in the core's file."""
        ld = self.load_at(address)
        return (
            ld is not None
            and address + size <= ld.vaddr + ld.filesz
            and ld.offset + (address - ld.vaddr) + size <= self.size
        )

    def read(self, address: int, size: int) -> bytes | None:
        """The process's memory at [address, address+size), as dumped; None for a byte the
        core left out (an area not dumped, the end of a partial one, a truncated file)."""
        if size <= 0:
            return b""
        chunks = []
        pos, end = address, address + size
        while pos < end:
            ld = self.load_at(pos)
            if ld is None or pos >= ld.vaddr + ld.filesz:
                return None
            take = min(end, ld.vaddr + ld.filesz) - pos
            offset = ld.offset + (pos - ld.vaddr)
            if offset + take > self.size:
                return None
            data = self._pread(offset, take)
            if data is None or len(data) != take:
                return None
            chunks.append(data)
            pos += take
        return b"".join(chunks)

    def _pread(self, offset: int, size: int) -> bytes | None:
        try:
            fd = open_regular(self.path)
        except BadFile:
            return None
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self.identity:
                return None  # another file at the path now
            return os.pread(fd, size, offset)
        except OSError:
            return None
        finally:
            os.close(fd)


class _Notes(NamedTuple):
    threads: tuple[CoreThread, ...]
    process: CoreProcess | None
    siginfo: bytes | None
    auxv: bytes
    files: tuple[CoreFile, ...]
    page_size: int


def is_core(head: bytes) -> bool:
    """Whether a file's first bytes (16 or more) are those of an ELF core file."""
    if len(head) < 18 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return False
    (e_type,) = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 16)
    return bool(e_type == ET_CORE)


def read_core(path: str, expect: Arch | None | bool = True) -> CoreDump:
    """Read a core file's headers and notes.

    `expect`: the architecture the core must be of (True: this machine's; None or
    False: any).  Raises BadFile for a path that is not a readable regular file,
    BadCore, in one line, for anything else wrong.
    """
    fd = open_regular(path)
    try:
        return _CoreReader(fd, path).read(host_arch() if expect is True else expect or None)
    finally:
        os.close(fd)


class _CoreReader:
    def __init__(self, fd: int, path: str):
        self.fd = fd
        self.path = path
        st = os.fstat(fd)
        self.size = st.st_size
        self.identity = (st.st_dev, st.st_ino)
        self.warnings: list[str] = []

    def bad(self, what: str) -> BadCore:
        return BadCore(f"{self.path}: {what}".replace("\n", "\\n"))

    def pread(self, offset: int, size: int) -> bytes:
        try:
            return os.pread(self.fd, size, offset)
        except OSError as err:
            raise BadFile(f"{self.path}: cannot read: {err.strerror}") from None

    def read(self, expect: Arch | None) -> CoreDump:
        head = self.pread(0, 64)
        if head[:4] != b"\x7fELF":
            raise self.bad("not a core file: not even an ELF file (no \\x7fELF magic)")
        if len(head) < 52 or head[4] not in (1, 2) or head[5] not in (1, 2):
            raise self.bad("a truncated or damaged ELF header: not a core procmap can read")
        bits = 64 if head[4] == 2 else 32
        e = "<" if head[5] == 1 else ">"
        endian = "little" if e == "<" else "big"
        if bits == 64:
            fmt, phdr = e + "16xHHIQQQIHHHHHH", struct.Struct(e + "IIQQQQQQ")
        else:
            fmt, phdr = e + "16xHHIIIIIHHHHHH", struct.Struct(e + "IIIIIIII")
        ehdr = struct.Struct(fmt)
        if len(head) < ehdr.size:
            raise self.bad("a truncated ELF header: not a core procmap can read")
        e_type, machine, _, _, phoff, _, _, _, phentsize, phnum, *_ = ehdr.unpack_from(head)
        if e_type != ET_CORE:
            kind = {1: "a relocatable object", 2: "an executable", 3: "a shared object or PIE"}
            what = kind.get(e_type, f"of type {e_type}")
            raise self.bad(f"an ELF file {what}, not a core file (ET_CORE)")
        arch = arch_of_machine(machine)
        if expect is not None and (arch is None or arch != expect or bits != 64):
            if arch is not None and bits == 64:
                name = arch.name
            else:
                name = describe_machine(machine) + (" (32-bit)" if bits == 32 else "")
            raise self.bad(
                f"a core of an {name} process; this machine is {expect.name}: procmap reads "
                "cores of this machine only (its files on disk are this machine's)"
            )
        if phentsize < phdr.size or phnum == 0:
            raise self.bad("a core without program headers: no notes, no memory")
        raw = self.pread(phoff, phentsize * phnum)
        if len(raw) < phentsize * phnum:
            raise self.bad(
                f"truncated: the file ends at {self.size} bytes, inside its program headers"
            )
        loads, notes = [], []
        for i in range(phnum):
            v = phdr.unpack_from(raw, i * phentsize)
            if bits == 64:
                p_type, p_flags, p_offset, p_vaddr, _, p_filesz, p_memsz, _ = v
            else:
                p_type, p_offset, p_vaddr, _, p_filesz, p_memsz, p_flags, _ = v
            if p_type == PT_LOAD:
                loads.append(CoreLoad(p_vaddr, p_memsz, min(p_filesz, p_memsz), p_offset, p_flags))
            elif p_type == PT_NOTE:
                notes.append((p_offset, p_filesz))
        if not notes:
            raise self.bad("a core without notes (PT_NOTE): no threads, no signal, no files")
        self.e, self.bits, self.machine = e, bits, machine
        parsed = self.notes(notes)
        loads.sort(key=lambda ld: ld.vaddr)
        short = [ld for ld in loads if ld.filesz and ld.offset + ld.filesz > self.size]
        if short:
            lost = sum(ld.offset + ld.filesz - max(ld.offset, self.size) for ld in short)
            self.warnings.append(
                f"{self.path}: truncated core: the file ends at {self.size} bytes, "
                f"{lost} bytes of the memory it dumped are missing ({len(short)} of "
                f"{len(loads)} areas): the map is whole, their contents are not"
            )
        return CoreDump(
            path=self.path,
            machine=machine,
            elf_class=bits,
            endian=endian,
            loads=tuple(loads),
            size=self.size,
            identity=self.identity,
            warnings=tuple(self.warnings),
            threads=parsed.threads,
            process=parsed.process,
            siginfo=parsed.siginfo,
            auxv=parsed.auxv,
            files=parsed.files,
            page_size=parsed.page_size,
        )

    def notes(self, segments: list[tuple[int, int]]) -> _Notes:
        threads: list[CoreThread] = []
        process = None
        siginfo = None
        auxv = b""
        files: tuple[CoreFile, ...] | None = None
        page_size = 4096
        for offset, size in segments:
            if size > MAX_NOTES:
                raise self.bad(f"notes of {size} bytes: not a real core")
            data = self.pread(offset, size)
            if len(data) < size:
                raise self.bad(
                    f"truncated: the file ends at {self.size} bytes, inside its notes "
                    f"(which end at {offset + size}): nothing to say who died or how"
                )
            for name, ntype, desc in iter_notes(data, self.e):
                if name != b"CORE":
                    continue  # "LINUX": extended register sets, not needed here
                if ntype == NT_PRSTATUS:
                    threads.append(self.prstatus(desc))
                elif ntype == NT_PRPSINFO and process is None:
                    process = self.prpsinfo(desc)
                elif ntype == NT_SIGINFO and siginfo is None:
                    siginfo = desc
                elif ntype == NT_AUXV and not auxv:
                    auxv = desc
                elif ntype == NT_FILE and files is None:
                    files, page_size = self.nt_file(desc)
        if not threads:
            raise self.bad(
                "a core without NT_PRSTATUS notes: no thread's registers, so nothing to say "
                "where it stopped"
            )
        if files is None:
            raise self.bad(
                "a core without an NT_FILE note, the list of mapped files (kernels before "
                "3.7, and some dumpers, leave it out): its memory cannot be tied to files"
            )
        return _Notes(tuple(threads), process, siginfo, auxv, files, page_size)

    def prstatus(self, desc: bytes) -> CoreThread:
        if self.bits != 64 or len(desc) < _PR_REG_64:
            raise self.bad(f"an NT_PRSTATUS note of {len(desc)} bytes: too short")
        (cursig,) = struct.unpack_from(self.e + "h", desc, _PR_CURSIG)
        (tid,) = struct.unpack_from(self.e + "i", desc, _PR_PID)
        # pr_reg runs to pr_fpvalid, an int padded to 8 bytes, at the end.
        raw = desc[_PR_REG_64 : len(desc) - 8]
        arch = arch_of_machine(self.machine)
        registers = arch.unpack_registers(raw, self.e) if arch is not None else {}
        return CoreThread(tid, cursig, registers, raw)

    def prpsinfo(self, desc: bytes) -> CoreProcess | None:
        if len(desc) < _PRPSINFO_64.size:
            self.warnings.append(f"{self.path}: an NT_PRPSINFO note too short to read")
            return None
        _, sname, _, _, _, uid, gid, pid, ppid, _, _, fname, psargs = _PRPSINFO_64.unpack_from(desc)
        return CoreProcess(
            pid=pid,
            ppid=ppid,
            uid=uid,
            gid=gid,
            comm=_c_text(fname),
            args=_c_text(psargs).rstrip(" "),
            state=sname.decode("latin-1"),
        )

    def nt_file(self, desc: bytes) -> tuple[tuple[CoreFile, ...], int]:
        """fs/binfmt_elf.c, fill_files_note: count, page size, then count x (start, end,
        file offset in pages), then count NUL-terminated names."""
        word = "Q" if self.bits == 64 else "I"
        n = self.bits // 8
        if len(desc) < 2 * n:
            raise self.bad("an NT_FILE note too short to read")
        count, page_size = struct.unpack_from(self.e + 2 * word, desc)
        if page_size <= 0 or page_size & (page_size - 1) or count * 3 * n > len(desc) - 2 * n:
            raise self.bad("a damaged NT_FILE note (page size or count out of range)")
        triples = struct.unpack_from(f"{self.e}{3 * count}{word}", desc, 2 * n)
        names = desc[2 * n + 3 * count * n :].split(b"\0")
        if len(names) < count:
            raise self.bad(f"a damaged NT_FILE note: {len(names)} names for {count} files")
        files = tuple(
            CoreFile(
                triples[3 * i],
                triples[3 * i + 1],
                triples[3 * i + 2] * page_size,
                names[i].decode("utf-8", "surrogateescape"),
            )
            for i in range(count)
        )
        return files, page_size


def iter_notes(data: bytes, e: str = "<") -> list[tuple[bytes, int, bytes]]:
    """(name, type, desc) of each note in a note segment's bytes, each 4-byte aligned."""
    head = struct.Struct(e + "III")
    out = []
    pos = 0
    while pos + head.size <= len(data):
        namesz, descsz, ntype = head.unpack_from(data, pos)
        pos += head.size
        name = data[pos : pos + namesz].rstrip(b"\0")
        desc_at = (pos + namesz + 3) & ~3
        if desc_at + descsz > len(data):
            break
        out.append((name, ntype, data[desc_at : desc_at + descsz]))
        pos = (desc_at + descsz + 3) & ~3
    return out


def build_id_in_page(page: bytes) -> str | None:
    """The GNU build id of an ELF file from its first bytes (the page a core keeps of
    each ELF file mapping: Linux dumps it so a debugger can tell which file it was),
    or None when its note is not within them."""
    if len(page) < 64 or page[:4] != b"\x7fELF" or page[5] not in (1, 2) or page[4] not in (1, 2):
        return None
    e = "<" if page[5] == 1 else ">"
    if page[4] == 2:
        phoff, phentsize, phnum = (
            struct.unpack_from(e + "Q", page, 32)[0],
            *struct.unpack_from(e + "HH", page, 54),
        )
        phdr = struct.Struct(e + "IIQQQQQQ")
    else:
        phoff, phentsize, phnum = (
            struct.unpack_from(e + "I", page, 28)[0],
            *struct.unpack_from(e + "HH", page, 42),
        )
        phdr = struct.Struct(e + "IIIIIIII")
    if phentsize < phdr.size:
        return None
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + phdr.size > len(page):
            return None
        v = phdr.unpack_from(page, at)
        p_type, offset, filesz = (v[0], v[2], v[5]) if page[4] == 2 else (v[0], v[1], v[4])
        if p_type != PT_NOTE or offset + filesz > len(page):
            continue
        for name, ntype, desc in iter_notes(page[offset : offset + filesz], e):
            if ntype == NT_GNU_BUILD_ID and name == b"GNU":
                return desc.hex()
    return None


def _c_text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
