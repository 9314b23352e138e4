"""A core file as a map procmap can show: a Snapshot, and the input of the crash analysis.

A core holds the process's memory areas (one PT_LOAD each, with its
permissions) and, in its NT_FILE note, the file and offset behind each file
mapping: what /proc/PID/maps said, less the names the kernel gives its own
areas and the devices and inodes.  `core_snapshot` writes that maps text back,
naming [vdso], [vvar], [stack] and [heap] as the kernel would from the
auxiliary vector and the threads' registers, and reads the ELF headers and
symbols of the mapped files from disk, checking each against the build id in
the copy of its first page the core holds.  The Snapshot is then classified
like any other (`views.replay.replay`).

`core_fault_input` gathers what the crash analysis (classify.fault) reads: the
signal, the dumping thread's registers, the map, and the process's memory, from
the core or, for the file pages the kernel left out of it (text, usually), from
the files on disk.
"""

from __future__ import annotations

import bisect
import os
from typing import NamedTuple

from ..classify.fault import FaultInput
from ..elf import ElfLayout, SymbolTable, align_up, read_elf_fd, read_symbols_fd
from ..elf.core import CoreDump, CoreFile, CoreLoad, build_id_in_page
from ..elf.layout import PT_PHDR
from ..errors import BadCore, BadFile, CorruptELF, NotAnELF
from ..files import open_regular
from ..kernel.procfs import dev_string, mmap_min_addr, parse_auxv, user_name
from ..kernel.signals import SI_KERNEL, Siginfo, parse_siginfo
from ..model import Facts, FileKey, Mapping, ProcessInfo, Region, Snapshot, Task, ThreadFacts
from .replay import replay

# Auxiliary vector types (include/uapi/linux/auxvec.h).
AT_PHDR, AT_ENTRY, AT_EXECFN, AT_SYSINFO_EHDR = 3, 9, 31, 33
# x86-64's vsyscall page: always at this address, in every core (the "gate" area).
_VSYSCALL = 0xFFFF_FFFF_FF60_0000
# How far above the program's end the kernel may start brk: 32 MiB on x86-64,
# 1 GiB on arm64 (arch_randomize_brk).
_BRK_RANGE = 1 << 30
_NO_FILE: FileKey = ("00:00", 0)
_DELETED = " (deleted)"


class _DiskFile(NamedTuple):
    """A file the core names, as found on disk now."""

    opened: str | None  # the path it was read from (the core's, or --exe); None: not found
    key: FileKey  # (dev, inode) as the map shows it; ("00:00", 0) when not found
    layout: ElfLayout | None
    symbols: SymbolTable | None
    trusted: bool  # the same build as the process mapped (or no way to tell): read its bytes


def core_snapshot(dump: CoreDump, path: str, exe: str | None = None) -> Snapshot:
    """The map a core holds, as a Snapshot (source "core") that `replay` classifies.

    `exe`: where to read the program's file from, when the core's path is gone or
    moved; refused (BadCore) unless it is the same build as the core's program.
    """
    from .. import __version__

    arch = dump.arch
    if arch is None:
        raise BadCore(f"{path}: a core of an unknown machine ({dump.machine})")
    auxv = parse_auxv(dump.auxv, dump.pointer_size, dump.endian) if dump.auxv else {}
    warnings = list(dump.warnings)
    files = {f.start: f for f in dump.files}
    program = _program_path(dump, auxv, exe)
    disk = _read_files(dump, program, exe, warnings)
    mappings = _mappings(dump, files, disk, auxv, warnings)
    program_layout = disk[program].layout if program in disk else None
    heap = _heap(dump, mappings, program, program_layout, auxv)
    if heap is not None:
        m = mappings[heap]
        mappings[heap] = m._replace(path="[heap]")
        warnings.append(
            f"[heap] at {m.start:x} is a guess: a core does not name the brk heap; it is taken "
            "to be the anonymous read-write mapping just above the program, where brk starts"
        )
    keys = {m.file_key for m in mappings if m.inode}
    layouts = {d.key: d.layout for d in disk.values() if d.key in keys and d.opened}
    symbols = {d.key: d.symbols for d in disk.values() if d.symbols is not None and d.key in keys}
    exe_key = disk[program].key if program in disk and disk[program].opened else None
    interp_key = None
    if program_layout is not None and program_layout.interpreter:
        try:
            st = os.stat(program_layout.interpreter)
            interp_key = (dev_string(st.st_dev), st.st_ino)
        except OSError:
            pass
    facts = Facts(
        page_size=dump.page_size,
        pointer_size=dump.pointer_size,
        exe_key=exe_key,
        interp_key=interp_key if interp_key in keys else None,
        thread_sps={t.tid: t.registers[arch.sp] for t in dump.threads if arch.sp in t.registers},
    )
    proc = dump.process
    if proc is not None:
        info = ProcessInfo(
            pid=proc.pid,
            name=proc.comm,
            # pr_psargs: the arguments joined by spaces and cut at 80 bytes: the split
            # is the best there is.
            cmdline=tuple(proc.args.split(" ")) if proc.args else (),
            user=user_name(proc.uid),
            uid=proc.uid,
            threads=len(dump.threads),
            state=proc.state,
        )
    else:
        tid = dump.threads[0].tid
        info = ProcessInfo(tid, os.path.basename(path), (), "?", -1, len(dump.threads), "?")
    # Each thread's TID and registers are in its NT_PRSTATUS; the name only of the
    # main thread (NT_PRPSINFO's pr_fname), and no thread's own state.
    main_tid = proc.pid if proc is not None else None
    tasks = tuple(
        Task(
            t.tid,
            proc.comm if proc is not None and t.tid == main_tid else None,
            None,
            None if t.tid in facts.thread_sps else "not-saved",
        )
        for t in dump.threads
    )
    try:
        dumped_at = os.stat(path).st_mtime
    except OSError:
        dumped_at = 0.0
    return Snapshot(
        maps=_maps_text(mappings),
        smaps=None,
        page_states={},
        info=info,
        facts=facts,
        layouts=layouts,
        symbols=symbols,
        warnings=warnings,
        kernel="",
        machine=arch.uname[0],
        hostname="",
        saved_at=dumped_at,
        procmap_version=__version__,
        source="core",
        threads=ThreadFacts(tasks, None),
    )


def core_fault_input(dump: CoreDump, snapshot: Snapshot, exe: str | None = None) -> FaultInput:
    """What the crash analysis reads, from a core and the Snapshot `core_snapshot` made
    of it (`exe`: the same --exe given to core_snapshot)."""
    arch = dump.arch
    if arch is None:
        raise BadCore(f"{dump.path}: a core of an unknown machine ({dump.machine})")
    first = dump.threads[0]
    if dump.siginfo is not None and len(dump.siginfo) >= 16:
        siginfo = parse_siginfo(dump.siginfo, dump.pointer_size, dump.struct_endian)
    else:
        # No NT_SIGINFO (Linux before 3.7): the signal alone, from pr_cursig; who sent
        # it and where it faulted are unknown.
        siginfo = Siginfo(first.cursig, 0, SI_KERNEL, None, None, None)
    pmap = replay(snapshot)
    mappings = pmap.mappings
    starts = [m.start for m in mappings]
    # The files on disk that are the ones mapped: their pages stand in for those the
    # core left out.  A file of another build is not read.
    trusted: dict[FileKey, str] = {}
    for m in mappings:
        if m.inode and m.file_key not in trusted:
            found = _disk_path(m, exe)
            layout = snapshot.layouts.get(m.file_key)
            if found is not None and not _mismatch(dump, mappings, m, layout):
                trusted[m.file_key] = found

    def read_memory(address: int, size: int) -> bytes | None:
        return _read_memory(dump, mappings, starts, trusted, address, size)

    def file_size(region: Region) -> int | None:
        found = _disk_path(region, exe) if region.inode else None
        if found is None:
            return None
        try:
            return os.stat(found).st_size
        except OSError:
            return None

    proc = dump.process
    main = proc is not None and first.tid == proc.pid
    return FaultInput(
        arch=arch,
        siginfo=siginfo,
        registers=first.registers,
        tid=first.tid,
        thread_name=proc.comm if main and proc is not None else None,
        pmap=pmap,
        symbols=lambda image: snapshot.symbols.get(image.key),
        read_memory=read_memory,
        file_size=file_size,
        mmap_min_addr=mmap_min_addr(),
        source="core",
    )


# --- the program and its files ------------------------------------------------------------


def _program_path(dump: CoreDump, auxv: dict[int, int], exe: str | None) -> str | None:
    """The core's path of the program's file: the file mapping holding its program
    headers (AT_PHDR) or entry point (AT_ENTRY), as the kernel loaded it."""
    for at in (AT_PHDR, AT_ENTRY):
        address = auxv.get(at)
        f = _file_at(dump.files, address) if address else None
        if f is not None:
            return f.path
    if exe is not None:  # no auxv: the mapped file named as --exe is
        base = os.path.basename(exe)
        return next((f.path for f in dump.files if os.path.basename(f.path) == base), None)
    return None


def _file_at(files: tuple[CoreFile, ...], address: int) -> CoreFile | None:
    return next((f for f in files if f.start <= address < f.end), None)


def _read_files(
    dump: CoreDump, program: str | None, exe: str | None, warnings: list[str]
) -> dict[str, _DiskFile]:
    """Each file the core names, read from disk (the program from `exe`, if given)."""
    out: dict[str, _DiskFile] = {}
    gone = []
    for f in dump.files:
        if f.path in out:
            continue
        if f.path.startswith("/dev/") or f.path.startswith("/memfd:") or f.path[:1] != "/":
            out[f.path] = _DiskFile(None, _NO_FILE, None, None, False)
            continue  # never open a device; a memfd was never on disk
        override = exe if f.path == program else None
        disk = _read_file(dump, f.path, override, warnings)
        if disk.opened is None and override is None:
            gone.append(f.path)
        out[f.path] = disk
    if gone:
        shown = "; ".join(gone[:3]) + (" ..." if len(gone) > 3 else "")
        hint = " (--exe PROG reads the program from another path)" if program in gone else ""
        warnings.append(
            f"{len(gone)} mapped file(s) not found on disk ({shown}): their mappings are "
            f"classified by names and permissions{hint}"
        )
    return out


def _read_file(dump: CoreDump, path: str, exe: str | None, warnings: list[str]) -> _DiskFile:
    on_disk = exe or (path[: -len(_DELETED)] if path.endswith(_DELETED) else path)
    try:
        fd = open_regular(on_disk)
    except BadFile as err:
        if exe is not None:
            raise BadCore(f"--exe {exe}: {err}") from None
        return _DiskFile(None, _NO_FILE, None, None, False)
    try:
        st = os.fstat(fd)
        key = (dev_string(st.st_dev), st.st_ino)
        try:
            layout: ElfLayout | None = read_elf_fd(fd, on_disk)
        except NotAnELF:
            return _DiskFile(on_disk, key, None, None, True)
        except CorruptELF as err:
            warnings.append(f"{err}; its mappings are shown as plain file mappings")
            return _DiskFile(on_disk, key, None, None, False)
        assert layout is not None
        in_core = _core_build_id(dump, path)
        trusted = True
        if in_core is not None and layout.build_id is not None and in_core != layout.build_id:
            if exe is not None:
                raise BadCore(
                    f"--exe {exe}: not the program of this core (build id {layout.build_id}; "
                    f"the core's {path} had {in_core})"
                )
            warnings.append(
                f"{path}: the file on disk is not the one the process mapped (build id "
                f"{layout.build_id}, the core's copy of its first page says {in_core}): "
                "its sections and symbols may be wrong, and its bytes are not read"
            )
            trusted = False
        elif path.endswith(_DELETED) and in_core is None:
            # Deleted when the process died: a file at its path now is another one,
            # unless a build id says otherwise.
            return _DiskFile(None, _NO_FILE, None, None, False)
        try:
            symbols: SymbolTable | None = (
                read_symbols_fd(fd, on_disk, layout) if layout.loads else None
            )
        except (NotAnELF, CorruptELF, OSError):
            symbols = None
        return _DiskFile(on_disk, key, layout, symbols, trusted)
    except OSError:
        return _DiskFile(None, _NO_FILE, None, None, False)
    finally:
        os.close(fd)


def _core_build_id(dump: CoreDump, path: str) -> str | None:
    """The build id in the core's copy of a file's first page: Linux dumps the first
    page of every ELF file mapping (fs/coredump.c, vma_dump_size) for this."""
    for f in dump.files:
        if f.path == path and f.offset == 0:
            page = dump.read(f.start, min(dump.page_size, f.end - f.start))
            if page is not None:
                return build_id_in_page(page)
    return None


def _mismatch(
    dump: CoreDump, mappings: list[Mapping], m: Mapping, layout: ElfLayout | None
) -> bool:
    """Whether the file behind `m` on disk is of another build than the core's copy."""
    if layout is None or layout.build_id is None or m.path is None:
        return False
    in_core = _core_build_id(dump, m.path)
    return in_core is not None and in_core != layout.build_id


def _disk_path(m: Mapping | Region, exe: str | None) -> str | None:
    """The path on disk of the very file the map names (same device and inode), or None."""
    path = m.path or ""
    candidates = [exe] if exe else []
    candidates.append(path[: -len(_DELETED)] if path.endswith(_DELETED) else path)
    for candidate in candidates:
        try:
            st = os.stat(candidate)
        except (OSError, ValueError):
            continue
        if (dev_string(st.st_dev), st.st_ino) == (m.dev, m.inode):
            return candidate
    return None


# --- the map ------------------------------------------------------------------------------


def _mappings(
    dump: CoreDump,
    files: dict[int, CoreFile],
    disk: dict[str, _DiskFile],
    auxv: dict[int, int],
    warnings: list[str],
) -> list[Mapping]:
    """One Mapping per PT_LOAD, as /proc/PID/maps showed it, the kernel's names included."""
    arch = dump.arch
    stack_at = auxv.get(AT_EXECFN)
    if stack_at is None and dump.process is not None and arch is not None:
        main = next((t for t in dump.threads if t.tid == dump.process.pid), None)
        stack_at = main.registers.get(arch.sp) if main is not None else None
    vdso = auxv.get(AT_SYSINFO_EHDR)
    out = []
    for ld in dump.loads:
        # A core keeps only r, w and x (p_flags): not whether a mapping was shared, so
        # every one is written private ("p"), as nearly all of a program's are.
        perms = ld.perms + "p"
        f = files.get(ld.vaddr)
        if f is not None and f.end == ld.end:
            d = disk.get(f.path)
            key = d.key if d is not None else _NO_FILE
            out.append(Mapping(ld.vaddr, ld.end, perms, f.offset, key[0], key[1], f.path))
            continue
        name = None
        if vdso is not None and ld.vaddr == vdso:
            name = "[vdso]"
        elif ld.vaddr == _VSYSCALL and arch is not None and arch.name == "x86-64":
            name = "[vsyscall]"
        elif stack_at is not None and ld.vaddr <= stack_at < ld.end and "w" in perms:
            name = "[stack]"
        out.append(Mapping(ld.vaddr, ld.end, perms, 0, "00:00", 0, name))
    _name_vvar(out, vdso)
    return out


def _name_vvar(mappings: list[Mapping], vdso: int | None) -> None:
    """[vvar] (and, from Linux 6.13, [vvar_vclock] above it): the read-only anonymous
    mappings right below [vdso], where the kernel puts them."""
    i = next((i for i, m in enumerate(mappings) if m.start == vdso), None)
    if i is None:
        return
    below: list[int] = []
    j = i - 1
    while j >= 0 and len(below) < 2:
        m = mappings[j]
        if m.path is not None or m.perms != "r--p" or m.end != mappings[j + 1].start:
            break
        below.append(j)
        j -= 1
    names = ["[vvar]"] if len(below) == 1 else ["[vvar_vclock]", "[vvar]"]
    for j, name in zip(below, names):
        mappings[j] = mappings[j]._replace(path=name)


def _heap(
    dump: CoreDump,
    mappings: list[Mapping],
    program: str | None,
    layout: ElfLayout | None,
    auxv: dict[int, int],
) -> int | None:
    """The index of the brk heap: the first anonymous read-write mapping at or above
    the program's end (where the kernel starts brk, a random distance above), or None."""
    if program is None:
        return None
    end = None
    phdr = auxv.get(AT_PHDR)
    if layout is not None and layout.loads and phdr:
        seg = next((s for s in layout.segments if s.type == PT_PHDR), None)
        bias = phdr - seg.vaddr if seg is not None else auxv.get(AT_ENTRY, 0) - layout.entry
        end = align_up(bias + max(s.vaddr + s.memsz for s in layout.loads), dump.page_size)
    if end is None:
        ours = [i for i, m in enumerate(mappings) if m.path == program]
        if not ours:
            return None
        last = ours[-1]
        end = mappings[last].end
        nxt = last + 1
        if nxt < len(mappings) and mappings[nxt].is_anonymous and mappings[nxt].start == end:
            end = mappings[nxt].end  # the bss beyond the file's last page
    i = bisect.bisect_left([m.start for m in mappings], end)
    if i >= len(mappings):
        return None
    m = mappings[i]
    if m.is_anonymous and m.perms == "rw-p" and m.start - end < _BRK_RANGE:
        return i
    return None


def _maps_text(mappings: list[Mapping]) -> bytes:
    """The mappings as /proc/PID/maps prints them (fs/proc/task_mmu.c, show_map_vma)."""
    lines = []
    for m in mappings:
        line = f"{m.start:08x}-{m.end:08x} {m.perms} {m.offset:08x} {m.dev} {m.inode} "
        if m.path is not None:
            line = line.ljust(73) + m.path.replace("\n", "\\012")
        lines.append(line.rstrip(" ") if m.path is None else line)
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


# --- memory -------------------------------------------------------------------------------


def _read_memory(
    dump: CoreDump,
    mappings: list[Mapping],
    starts: list[int],
    trusted: dict[FileKey, str],
    address: int,
    size: int,
) -> bytes | None:
    """[address, address+size) from the core, and from the files on disk where the
    core left file pages out; None if any byte is in neither."""
    if size <= 0:
        return b""
    chunks = []
    pos, end = address, address + size
    while pos < end:
        ld: CoreLoad | None = dump.load_at(pos)
        if ld is None:
            return None
        dumped_end = min(ld.vaddr + ld.filesz, ld.vaddr + max(0, dump.size - ld.offset))
        if pos < dumped_end:
            take = min(end, dumped_end) - pos
            data = dump.read(pos, take)
        else:
            i = bisect.bisect_right(starts, pos) - 1
            m = mappings[i] if i >= 0 and pos < mappings[i].end else None
            found = trusted.get(m.file_key) if m is not None and m.inode else None
            if m is None or found is None:
                return None
            take = min(end, m.end, ld.end) - pos
            data = _pread_file(found, m.offset + (pos - m.start), take)
        if data is None or len(data) != take:
            return None  # past the end of the file: a SIGBUS page, not memory
        chunks.append(data)
        pos += take
    return b"".join(chunks)


def _pread_file(path: str, offset: int, size: int) -> bytes | None:
    try:
        fd = open_regular(path)
    except BadFile:
        return None
    try:
        return os.pread(fd, size, offset)
    except OSError:
        return None
    finally:
        os.close(fd)
