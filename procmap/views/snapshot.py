"""A process's map saved to a file, to be drawn again on another machine.

`procmap PID --save FILE` writes what procmap read from the process and its
files (the maps text, the ELF layout and symbols of each mapped file, the facts
the classifier uses: a model.Snapshot, which live.capture makes); `procmap
--from FILE` classifies it again without the process, its files or even Linux
(`replay`, `where_saved`).  The rest of this module is the file format: `write`
and `read`, and `to_dict` / `from_dict` for the JSON shape.

`read` also takes a plain copy of /proc/PID/maps or /proc/PID/smaps (what a
bug report usually holds): without ELF headers or stack pointers its regions
are classified by names and permissions alone, and the snapshot's warning
says so.

The file is one compact JSON object, strict UTF-8, with these keys in this
order and no others (a reader refuses a key it does not know: any change to the
shape is a new version):

    {
      "format": "procmap-snapshot",
      "version": 4,                  # a reader refuses a greater one, naming it
      "procmap": TEXT,               # the version of procmap that saved it
      "saved_at": 1717171717.25,     # unix time
      "kernel": TEXT, "machine": TEXT, "hostname": TEXT,   # os.uname() when saved
      "process": {"pid": 1234, "name": TEXT, "cmdline": [TEXT, ...], "user": TEXT,
                  "uid": 1000, "threads": 3, "state": TEXT},
      "facts": {"page_size": 4096, "pointer_size": 8,
                "exe_key": ["fe:01", 1319] or null, "interp_key": [dev, inode] or null,
                "program_key": [dev, inode] or null,
                "program_from": "auxv" or "link-map" or "heuristic" or null,
                "thread_sps": [[tid, ADDRESS], ...], "unknown_threads": [tid, ...],
                "thread_stack_size": 8388608 or null,
                "runtimes": [RUNTIME, ...] or null,
                "heap_ranges": [[ADDRESS start, ADDRESS end, KIND, DETAIL, ALLOCATOR,
                                 heuristic, DETAIL or null], ...]},
      "maps": BYTES,                 # /proc/PID/maps exactly as read
      "smaps": BYTES or null,        # /proc/PID/smaps, when it was read
      "smaps_rollup": BYTES or null, # /proc/PID/smaps_rollup, read with smaps
      "page_states": {ADDRESS: "rrr.s", ...},
      "files": [{"dev": "fe:01", "inode": 1319, "layout": LAYOUT or null,
                 "symbols": SYMBOLS or null}, ...],
      "warnings": [TEXT, ...],
      "threads": THREADS or null,    # null: not read (a core or a plain text made it)
      "sharing": SHARING or null     # null: saved without --shared
    }

    SHARING = {"scope": {"processes_read": 42, "unreadable": [[pid, TEXT name], ...],
                         "target_pids": [pid, ...], "own_namespace": false},
               "regions": [[ADDRESS start, ADDRESS end, shared_pages, exclusive_pages,
                            METHOD, [[pid, TEXT name, VIA, writable, pages or null],
                                     ...]], ...]}

    THREADS = {"tasks": [[tid, TEXT name or null, TEXT state or null,
                          SP_UNKNOWN or null], ...],
               "stack_guard_gap": 1048576 or null}

    LAYOUT = {"elf_class": 64, "endian": "little", "machine": 62, "type": 3,
              "entry": ADDRESS,
              "segments": [[type, flags, ADDRESS offset, ADDRESS vaddr, filesz, memsz,
                            align], ...],
              "sections": [[TEXT name, type, flags, ADDRESS addr, ADDRESS offset, size,
                            link], ...],
              "interpreter": TEXT or null, "build_id": "3f2a..." or null,
              "file_size": 141936}
    SYMBOLS = {"source": ".symtab" or ".dynsym" or null,
               "symbols": [[TEXT name, ADDRESS value, size, type], ...]}

An ADDRESS (an address or a file offset) is a string, "0x" and lower-case hex
digits, as in every JSON procmap writes: JSON readers that hold numbers as
doubles (jq 1.6, JavaScript) would round those past 2**53.  Other numbers are
integers (sizes up to 2**64-1), except saved_at.  A file's `layout` is null
when it is not ELF; it has `symbols` only with a layout.  `page_states` holds
a few mappings of `maps`, each keyed by its start: one character per page of
it, "r" resident, "s" swapped, "." neither.  A reader checks all of this, and
that `maps`, `smaps` and `smaps_rollup` are in the kernel's formats.

`program_key` is the program's file when it is not `exe_key`: the dynamic
linker run as a command (`ld.so PROGRAM`), which is then `exe_key` and
`interp_key`; `program_from` says how it was found (model.Facts).  Both are
null otherwise.

`threads` holds what `--threads` shows besides the stack pointers (which
are the facts'): each thread's TID, name (comm), state (stat's letter) and,
when its stack pointer is not in `thread_sps`, why (a key of
model.SP_UNKNOWN); and the kernel's stack guard gap, in bytes.

`sharing` holds what `--shared` found when the snapshot was taken (the other
processes are not there to read later): which processes were looked at, and
for each region its resident pages shared and its own, how its sharers were
found (METHOD: "frames", "exclusive-bit" or "maps") and each sharer (VIA:
"object" or "copy-on-write"; writable a JSON boolean).

`runtimes` holds the allocators and runtimes found in the mapped files,
RUNTIME = {"name": ALLOCATOR, "object": TEXT, "malloc": boolean, "found_by":
"name" or "symbols" or "section"}, or null when they were not looked for;
`heap_ranges` what runtimes reported of their own memory (model.HeapRange):
ALLOCATOR is a key of model.ALLOCATORS, KIND of model.KINDS, DETAIL a
model.Detail's key; the last DETAIL, where not null, that of the range's
parts with no access (HeapRange.reserve).

Version 4 is still read: the keys of version 5 but the facts' `runtimes` and
`heap_ranges` (procmap then does not know them, as before it looked).
Version 3 is still read: the keys of version 4 but `threads` (its threads
are then those of `thread_sps` and `unknown_threads`, without names).
Version 2 is still read: the keys of version 3 but `program_key` and `program_from`.
Version 1, which procmap 0.1 wrote, is still read: the keys of version 2 but
`smaps_rollup`, and its addresses are JSON numbers (page_states' keys, hex
digits without "0x").

Strings that came from the process, its files or the machine can hold any
bytes, not only UTF-8 (procmap decodes them with "surrogateescape", as
os.fsdecode does), and JSON cannot: so a TEXT is a JSON string when it is
valid Unicode, else {"base64": B}, B the base64 of its bytes (os.fsencode of
the string: the file name's real bytes).  A string that is not the
surrogateescape decoding of any bytes (such as a lone U+D800)
cannot come from a file or the kernel, but round-trips too, as
{"codepoints": [int, ...]}.  A BYTES is a JSON string when the bytes are valid
UTF-8, else {"base64": B}.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import time
from typing import Any, BinaryIO, NoReturn

from ..classify.locate import locate
from ..elf import ElfLayout, Section, Segment, Symbol, SymbolTable
from ..elf.core import is_core, read_core
from ..elf.layout import PT_LOAD
from ..errors import BadFile, BadSnapshot, MapsFormatError
from ..files import open_regular, write_atomic
from ..kernel.maps import parse_maps
from ..kernel.smaps import parse_rollup, parse_smaps
from ..model import (
    ALLOCATORS,
    EXCLUSIVE_BIT,
    FRAMES,
    KINDS,
    MAPS_ONLY,
    SP_UNKNOWN,
    VIA_COPY_ON_WRITE,
    VIA_OBJECT,
    Detail,
    Facts,
    FileKey,
    HeapRange,
    JSONDict,
    Location,
    Mapping,
    ProcessInfo,
    Runtime,
    SavedSharing,
    Sharer,
    Sharing,
    SharingScope,
    Snapshot,
    Task,
    ThreadFacts,
    hex_address,
)
from .replay import replay  # this module's public name too, as before

FORMAT = "procmap-snapshot"
VERSION = 5
MAX_SIZE = 2 << 30  # bytes: far beyond any real snapshot, short of exhausting memory

_U64 = 1 << 64
_U32 = 1 << 32
_TID = 1 << 31  # PID_MAX_LIMIT is 2**22; pid_t is a signed 32-bit integer


# --- showing a saved map ---------------------------------------------------------------


def where_saved(snapshot: Snapshot, addresses: list[int]) -> list[Location]:
    """`where` over a Snapshot: its saved symbols name the addresses."""
    pmap = replay(snapshot)
    return [locate(pmap, a, lambda image: snapshot.symbols.get(image.key)) for a in addresses]


def describe(snapshot: Snapshot) -> str:
    """Where a saved map came from, in one line."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(snapshot.saved_at))
    if snapshot.source == "core":
        info = snapshot.info
        return f"map of PID {info.pid} ({info.name}) from a core file dumped {when}"
    if snapshot.source != "snapshot":
        return f"{snapshot.info.name}: a plain {snapshot.source} text, modified {when}"
    info = snapshot.info
    host = f" on {snapshot.hostname}" if snapshot.hostname else ""
    return (
        f"map of PID {info.pid} ({info.name}) saved {when}{host}, "
        f"Linux {snapshot.kernel} {snapshot.machine}, by procmap {snapshot.procmap_version}"
    )


# --- writing --------------------------------------------------------------------------


def write(snapshot: Snapshot, path: str | bytes | os.PathLike[str], force: bool = False) -> str:
    """Write `snapshot` to `path` as JSON, atomically: all of it or, on failure, nothing.

    A snapshot holds command lines and paths, so a new file is readable by its
    owner only and a replaced one keeps its owner and mode; a file that is not
    a snapshot is replaced only with `force` (files.write_atomic).  Returns the
    path written: a symbolic link's target.
    """
    data = dumps(snapshot)  # a bug in the snapshot fails before the disk is touched
    return write_atomic(path, data, private=True, ours=is_snapshot, what=_WHAT, force=force)


_WHAT = "procmap snapshot"
_HEAD = re.compile(rb'\s*\{\s*"format"\s*:\s*"procmap-snapshot"')


def is_snapshot(head: bytes) -> bool:
    """Whether a file's first bytes are those of a snapshot (compact or re-indented)."""
    return _HEAD.match(head) is not None


def dumps(snapshot: Snapshot) -> bytes:
    """The bytes `write` writes: compact JSON, strict UTF-8, one line."""
    text = json.dumps(to_dict(snapshot), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # Strict: a lone surrogate that escaped _text() would fail here, not in a reader.
    return text.encode("utf-8") + b"\n"


def to_dict(snapshot: Snapshot) -> JSONDict:
    """The JSON shape of `snapshot` (see the module docstring)."""
    s = snapshot
    files = []
    for key, layout in s.layouts.items():
        table = s.symbols.get(key)
        if table is not None and layout is None:
            raise ValueError(f"symbols for {key}, whose layout is None (not ELF)")
        files.append(
            {
                "dev": key[0],
                "inode": key[1],
                "layout": None if layout is None else _layout_dict(layout),
                "symbols": None if table is None else _symbols_dict(table),
            }
        )
    orphans = [key for key in s.symbols if key not in s.layouts]
    if orphans:
        raise ValueError(f"symbols for {orphans[0]}, which has no layout")
    info, facts = s.info, s.facts
    return {
        "format": FORMAT,
        "version": VERSION,
        "procmap": _text(s.procmap_version),
        "saved_at": float(s.saved_at),
        "kernel": _text(s.kernel),
        "machine": _text(s.machine),
        "hostname": _text(s.hostname),
        "process": {
            "pid": info.pid,
            "name": _text(info.name),
            "cmdline": [_text(arg) for arg in info.cmdline],
            "user": _text(info.user),
            "uid": info.uid,
            "threads": info.threads,
            "state": _text(info.state),
        },
        "facts": {
            "page_size": facts.page_size,
            "pointer_size": facts.pointer_size,
            "exe_key": _key_list(facts.exe_key),
            "interp_key": _key_list(facts.interp_key),
            "program_key": _key_list(facts.program_key),
            "program_from": facts.program_from,
            "thread_sps": [[tid, hex_address(sp)] for tid, sp in facts.thread_sps.items()],
            "unknown_threads": list(facts.unknown_threads),
            "thread_stack_size": facts.thread_stack_size,
            "runtimes": None
            if facts.runtimes is None
            else [
                {
                    "name": r.name,
                    "object": _text(r.object),
                    "malloc": r.malloc,
                    "found_by": r.found_by,
                }
                for r in facts.runtimes
            ],
            "heap_ranges": [
                [
                    hex_address(h.start),
                    hex_address(h.end),
                    h.kind,
                    h.detail.value,
                    h.allocator,
                    h.heuristic,
                    None if h.reserve is None else h.reserve.value,
                ]
                for h in facts.heap_ranges
            ],
        },
        "maps": _bytes(s.maps),
        "smaps": None if s.smaps is None else _bytes(s.smaps),
        "smaps_rollup": None if s.rollup is None else _bytes(s.rollup),
        "page_states": {
            hex_address(start): states for start, states in sorted(s.page_states.items())
        },
        "files": files,
        "warnings": [_text(w) for w in s.warnings],
        "threads": None if s.threads is None else _threads_dict(s.threads),
        "sharing": None if s.sharing is None else _sharing_dict(s.sharing),
    }


def _sharing_dict(saved: SavedSharing) -> JSONDict:
    scope = saved.scope
    return {
        "scope": {
            "processes_read": scope.processes_read,
            "unreadable": [[pid, _text(name)] for pid, name in scope.unreadable],
            "target_pids": list(scope.target_pids),
            "own_namespace": scope.own_namespace,
        },
        "regions": [
            [
                hex_address(start),
                hex_address(end),
                x.shared_pages,
                x.exclusive_pages,
                x.method,
                [[y.pid, _text(y.name), y.via, y.writable, y.pages] for y in x.sharers],
            ]
            for (start, end), x in sorted(saved.regions.items())
        ],
    }


def _threads_dict(threads: ThreadFacts) -> JSONDict:
    return {
        "tasks": [
            [
                t.tid,
                None if t.name is None else _text(t.name),
                None if t.state is None else _text(t.state),
                t.sp_unknown,
            ]
            for t in threads.tasks
        ],
        "stack_guard_gap": threads.stack_guard_gap,
    }


def _key_list(key: FileKey | None) -> list[str | int] | None:
    return None if key is None else [key[0], key[1]]


def _layout_dict(layout: ElfLayout) -> JSONDict:
    return {
        "elf_class": layout.elf_class,
        "endian": layout.endian,
        "machine": layout.machine,
        "type": layout.type,
        "entry": hex_address(layout.entry),
        "segments": [
            [t, f, hex_address(offset), hex_address(vaddr), filesz, memsz, align]
            for t, f, offset, vaddr, filesz, memsz, align in layout.segments
        ],
        "sections": [
            [_text(name), t, f, hex_address(addr), hex_address(offset), size, link]
            for name, t, f, addr, offset, size, link in layout.sections
        ],
        "interpreter": None if layout.interpreter is None else _text(layout.interpreter),
        "build_id": layout.build_id,
        "file_size": layout.file_size,
    }


def _symbols_dict(table: SymbolTable) -> JSONDict:
    return {
        "source": table.source,
        # hex_address inlined: a library has 100,000 symbols.
        "symbols": [[_text(s.name), f"0x{s.value:x}", s.size, s.type] for s in table.symbols],
    }


def _text(s: str) -> str | JSONDict:
    """A string as JSON can hold it: itself, or its bytes in base64 (see the docstring)."""
    if s.isascii():
        return s
    try:
        s.encode("utf-8")  # no lone surrogates: JSON holds it as it is
        return s
    except UnicodeEncodeError:
        pass
    try:
        raw = s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = None
    if raw is not None and raw.decode("utf-8", "surrogateescape") == s:
        return {"base64": base64.b64encode(raw).decode("ascii")}
    return {"codepoints": [ord(c) for c in s]}


def _bytes(data: bytes) -> str | JSONDict:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}


# --- reading --------------------------------------------------------------------------


def read(path: str | bytes | os.PathLike[str]) -> Snapshot:
    """A snapshot from a file `write` wrote, or from a plain maps or smaps text.

    Raises BadFile for a path that is not a readable regular file (never opening
    a FIFO or a device), BadSnapshot, naming what is wrong, for anything else.
    """
    path = os.fsdecode(path)
    fd = open_regular(path)
    try:
        st = os.fstat(fd)
        # A core file: told by its first bytes, before anything reads the whole of
        # it (a core can be gigabytes).
        if is_core(_pread(fd, path, 64)):
            from .core import core_snapshot

            os.close(fd)
            fd = -1
            return core_snapshot(read_core(path), path)
        if st.st_size > MAX_SIZE:
            raise _too_big(path)
        data = _read_all(fd, path)
    finally:
        if fd >= 0:
            os.close(fd)
    return loads(data, path, st.st_mtime)


def _pread(fd: int, path: str, size: int) -> bytes:
    try:
        return os.pread(fd, size, 0)
    except OSError as err:
        raise BadFile(f"{path}: cannot read: {err.strerror}") from None


def read_stream(stream: BinaryIO, name: str = "standard input") -> Snapshot:
    """A snapshot, or a maps or smaps text, read from a binary stream (`--from -`)."""
    chunks: list[bytes] = []
    total = 0
    while chunk := stream.read(1 << 20):
        total += len(chunk)
        if total > MAX_SIZE:
            raise _too_big(name)
        chunks.append(chunk)
    return loads(b"".join(chunks), name, time.time())


def loads(data: bytes, path: str, mtime: float) -> Snapshot:
    """A snapshot from the bytes of a file named `path` (for messages), modified at `mtime`."""
    first = _NOT_SPACE.search(data)
    if first is None:
        raise _error(f"{path}: an empty file, neither a procmap snapshot nor a maps text")
    if data[first.start()] == ord("{"):
        return from_dict(_load_json(data, path), path)
    if is_core(data[:64]):
        # A core is read where it lies (its memory on demand, never all of it).
        raise _error(f"{path}: a core file: give its path (--from CORE), not a stream")
    return _from_text(data, path, mtime)


_NOT_SPACE = re.compile(rb"\S")


def _read_all(fd: int, path: str) -> bytes:
    # A loop to the end, not st_size: /proc/PID/maps is a regular file of size 0.
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            chunk = os.read(fd, 1 << 20)
        except OSError as err:
            raise BadFile(f"{path}: cannot read: {err.strerror}") from None
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > MAX_SIZE:
            raise _too_big(path)
        chunks.append(chunk)


def _too_big(path: str) -> BadSnapshot:
    return _error(f"{path}: larger than a snapshot can be ({MAX_SIZE >> 30} GiB)")


def _error(message: str) -> BadSnapshot:
    # One line whatever a path or a value holds.
    return BadSnapshot(message.replace("\r", "\\r").replace("\n", "\\n"))


def _damaged(name: str, what: str) -> BadSnapshot:
    return _error(f"{name}: damaged snapshot: {what}")


class _Damage(Exception):
    """What is wrong with the JSON, and where; from_dict names the file."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}" if where else what)


def _load_json(data: bytes, path: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _damaged(path, f"not UTF-8 (byte {err.start})") from None
    try:
        return json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        what = err.msg.removesuffix(" at")
        what = f"{what[:1].lower()}{what[1:]} at line {err.lineno} column {err.colno}"
        stripped = text.rstrip()
        if not stripped.endswith("}") or err.pos >= len(stripped):
            what += " (the file ends early: cut short?)"
        raise _damaged(path, f"not JSON: {what}") from None
    except _Damage as err:
        raise _damaged(path, str(err)) from None
    except RecursionError:
        raise _damaged(path, "arrays or objects nested too deeply") from None
    except ValueError as err:  # an integer of more than 4300 digits
        raise _damaged(path, str(err)) from None


def _object_pairs(pairs: list[tuple[str, Any]]) -> JSONDict:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [k for k, _ in pairs]
        twice = next(k for i, k in enumerate(keys) if k in keys[:i])
        raise _Damage("", f"an object holds the key {_show(twice)} twice")
    return result


def _no_constant(name: str) -> NoReturn:
    raise _Damage("", f"{name} is not a JSON number")


def from_dict(data: Any, name: str) -> Snapshot:
    """The Snapshot a JSON object describes, checked strictly; `name` names it in errors.

    Raises BadSnapshot with one line naming the first thing wrong, and where.
    """
    try:
        return _snapshot(data, name)
    except _Damage as err:
        raise _damaged(name, str(err)) from None
    except (
        KeyError,
        TypeError,
        ValueError,
        IndexError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as err:
        # A check missed: still the user's file, not procmap's bug to show as a traceback.
        raise _damaged(name, f"{type(err).__name__}: {err}") from None


_TOP = (
    "format",
    "version",
    "procmap",
    "saved_at",
    "kernel",
    "machine",
    "hostname",
    "process",
    "facts",
    "maps",
    "smaps",
    "smaps_rollup",
    "page_states",
    "files",
    "warnings",
    "threads",
    "sharing",
)
_TOP_3 = tuple(key for key in _TOP if key not in ("threads", "sharing"))
_TOP_1 = tuple(key for key in _TOP_3 if key != "smaps_rollup")
# The keys of each object, spelled out rather than taken from the classes'
# fields: they are the file format, and a field added to a class must not
# change it without a new VERSION (the round-trip tests fail first).
_PROCESS = ("pid", "name", "cmdline", "user", "uid", "threads", "state")
_FACTS = (
    "page_size",
    "pointer_size",
    "exe_key",
    "interp_key",
    "program_key",
    "program_from",
    "thread_sps",
    "unknown_threads",
    "thread_stack_size",
    "runtimes",
    "heap_ranges",
)
_FACTS_4 = tuple(key for key in _FACTS if key not in ("runtimes", "heap_ranges"))
_FACTS_2 = tuple(key for key in _FACTS_4 if key not in ("program_key", "program_from"))
_RUNTIME = ("name", "object", "malloc", "found_by")
_FOUND_BY = ("name", "symbols", "section")
_PROGRAM_FROM = ("auxv", "link-map", "heuristic")
_FILE = ("dev", "inode", "layout", "symbols")
_LAYOUT = (
    "elf_class",
    "endian",
    "machine",
    "type",
    "entry",
    "segments",
    "sections",
    "interpreter",
    "build_id",
    "file_size",
)
_SYMBOLS = ("source", "symbols")
_SEGMENT_LIMITS = (_U32, _U32, _U64, _U64, _U64, _U64, _U64)  # type, flags, offset...
_SECTION_LIMITS = (_U32, _U64, _U64, _U64, _U64, _U32)  # type, flags, addr, offset, size, link


def _snapshot(data: Any, name: str) -> Snapshot:
    if type(data) is not dict:
        raise _Damage("", f"expected a JSON object, not {_kind(data)}")
    if "format" not in data:
        raise _Damage("", "no 'format' key: JSON, but not a procmap snapshot")
    if data["format"] != FORMAT:
        raise _Damage("format", f"{_show(data['format'])}, not {FORMAT!r}")
    version = data.get("version")
    if type(version) is int and version > VERSION:
        raise _error(
            f"{name}: a snapshot of format version {_show(version)}, newer than this "
            f"procmap reads ({VERSION}); a newer procmap reads it"
        )
    if type(version) is not int or version < 1:
        raise _Damage("version", f"expected an integer from 1, not {_show(version)}")
    v1 = version == 1
    _object(data, "", _TOP_1 if v1 else _TOP_3 if version < 4 else _TOP)

    maps = _read_bytes(data["maps"], "maps")
    try:
        mappings = parse_maps(maps)
    except MapsFormatError as err:
        raise _Damage("maps", str(err)) from None
    if not mappings:
        raise _Damage("maps", "no mappings")
    smaps = None
    if data["smaps"] is not None:
        smaps = _read_bytes(data["smaps"], "smaps")
        try:
            smaps_maps_text(smaps)
            parse_smaps(smaps)  # its figures too: replay reads them
        except MapsFormatError as err:
            raise _Damage("smaps", str(err)) from None
    rollup = None
    if not v1 and data["smaps_rollup"] is not None:
        rollup = _read_bytes(data["smaps_rollup"], "smaps_rollup")
        try:
            parse_rollup(rollup)
        except MapsFormatError as err:
            raise _Damage("smaps_rollup", str(err)) from None

    facts = _facts(data["facts"], "facts", version)
    saved_at = data["saved_at"]
    if not (
        (type(saved_at) is int and 0 <= saved_at < 1 << 53)
        or (type(saved_at) is float and math.isfinite(saved_at) and saved_at >= 0)
    ):
        raise _Damage("saved_at", f"expected a unix time, not {_show(saved_at)}")
    layouts, symbols = _files(data["files"], "files", v1)
    states = _page_states(data["page_states"], "page_states", mappings, facts.page_size, v1)
    threads = None
    if version >= 4 and data["threads"] is not None:
        threads = _threads(data["threads"], "threads")
    sharing = None
    if version >= 4 and data["sharing"] is not None:
        sharing = _sharing(data["sharing"], "sharing")
    return Snapshot(
        maps=maps,
        smaps=smaps,
        rollup=rollup,
        page_states=states,
        info=_process(data["process"], "process"),
        facts=facts,
        layouts=layouts,
        symbols=symbols,
        warnings=[_read_text(w, f"warnings[{i}]") for i, w in enumerate(_list(data, "warnings"))],
        kernel=_read_text(data["kernel"], "kernel"),
        machine=_read_text(data["machine"], "machine"),
        hostname=_read_text(data["hostname"], "hostname"),
        saved_at=float(saved_at),
        procmap_version=_read_text(data["procmap"], "procmap"),
        threads=threads,
        sharing=sharing,
    )


_SHARING = ("scope", "regions")
_SCOPE = ("processes_read", "unreadable", "target_pids", "own_namespace")
_METHODS = (FRAMES, EXCLUSIVE_BIT, MAPS_ONLY)
_VIAS = (VIA_OBJECT, VIA_COPY_ON_WRITE)


def _sharing(value: Any, where: str) -> SavedSharing:
    d = _object(value, where, _SHARING)
    at = f"{where}.scope"
    scope = _object(d["scope"], at, _SCOPE)
    unreadable = []
    for i, entry in enumerate(_list(scope, "unreadable", at)):
        here = f"{at}.unreadable[{i}]"
        pid, name = _entry(entry, here, ("pid", "name"))
        unreadable.append((_int(pid, f"{here}[0]", 0, _TID), _read_text(name, f"{here}[1]")))
    pids = _list(scope, "target_pids", at)
    saved_scope = SharingScope(
        processes_read=_int(scope["processes_read"], f"{at}.processes_read", 0, _TID),
        unreadable=tuple(unreadable),
        target_pids=tuple(_int(p, f"{at}.target_pids[{i}]", 0, _TID) for i, p in enumerate(pids)),
        own_namespace=_bool(scope["own_namespace"], f"{at}.own_namespace"),
    )
    regions: dict[tuple[int, int], Sharing] = {}
    fields = ("start", "end", "shared_pages", "exclusive_pages", "method", "sharers")
    for i, entry in enumerate(_list(d, "regions", where)):
        at = f"{where}.regions[{i}]"
        start, end, shared, own, method, sharers = _entry(entry, at, fields)
        start, end = _address(start, f"{at}[0]"), _address(end, f"{at}[1]")
        if end <= start or (start, end) in regions:
            raise _Damage(at, "not a region, or one given twice")
        if type(sharers) is not list:
            raise _Damage(f"{at}[5]", f"expected a list, not {_kind(sharers)}")
        regions[(start, end)] = Sharing(
            tuple(_sharer(y, f"{at}[5][{j}]") for j, y in enumerate(sharers)),
            _int(shared, f"{at}[2]", 0, _U64),
            _int(own, f"{at}[3]", 0, _U64),
            _choice(method, f"{at}[4]", _METHODS),
        )
    return SavedSharing(saved_scope, regions)


def _sharer(value: Any, where: str) -> Sharer:
    pid, name, via, writable, pages = _entry(
        value, where, ("pid", "name", "via", "writable", "pages")
    )
    return Sharer(
        _int(pid, f"{where}[0]", 0, _TID),
        _read_text(name, f"{where}[1]"),
        _choice(via, f"{where}[2]", _VIAS),
        _bool(writable, f"{where}[3]"),
        None if pages is None else _int(pages, f"{where}[4]", 0, _U64),
    )


def _entry(value: Any, where: str, fields: tuple[str, ...]) -> list[Any]:
    """A JSON array of exactly these fields."""
    if type(value) is not list or len(value) != len(fields):
        raise _Damage(where, f"expected [{', '.join(fields)}]")
    return value


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _Damage(where, f"expected one of {', '.join(choices)}, not {_show(value)}")
    return str(value)


def _bool(value: Any, where: str) -> bool:
    if type(value) is not bool:
        raise _Damage(where, f"expected true or false, not {_show(value)}")
    return value


_THREADS = ("tasks", "stack_guard_gap")


def _threads(value: Any, where: str) -> ThreadFacts:
    d = _object(value, where, _THREADS)
    tasks = []
    seen: set[int] = set()
    for i, entry in enumerate(_list(d, "tasks", where)):
        at = f"{where}.tasks[{i}]"
        if type(entry) is not list or len(entry) != 4:
            raise _Damage(at, "expected [tid, name, state, sp_unknown]")
        tid = _int(entry[0], f"{at}[0]", 1, _TID)
        if tid in seen:
            raise _Damage(at, f"thread {tid} appears twice")
        seen.add(tid)
        name = None if entry[1] is None else _read_text(entry[1], f"{at}[1]")
        state = None if entry[2] is None else _read_text(entry[2], f"{at}[2]")
        if state is not None and len(state) != 1:
            raise _Damage(f"{at}[2]", f"expected a state letter or null, not {_show(state)}")
        why = entry[3]
        if why is not None and why not in SP_UNKNOWN:
            raise _Damage(
                f"{at}[3]",
                f"expected one of {', '.join(SP_UNKNOWN)} or null, not {_show(why)}",
            )
        tasks.append(Task(tid, name, state, why))
    gap = d["stack_guard_gap"]
    return ThreadFacts(
        tuple(tasks),
        None if gap is None else _int(gap, f"{where}.stack_guard_gap", 0, _U64),
    )


def _process(value: Any, where: str) -> ProcessInfo:
    d = _object(value, where, _PROCESS)
    return ProcessInfo(
        pid=_int(d["pid"], f"{where}.pid", 0, _TID),
        name=_read_text(d["name"], f"{where}.name"),
        cmdline=tuple(
            _read_text(arg, f"{where}.cmdline[{i}]")
            for i, arg in enumerate(_list(d, "cmdline", where))
        ),
        user=_read_text(d["user"], f"{where}.user"),
        uid=_int(d["uid"], f"{where}.uid", -1, _U32),  # -1: unknown (a plain maps text)
        threads=_int(d["threads"], f"{where}.threads", 0, _TID),
        state=_read_text(d["state"], f"{where}.state"),
    )


def _facts(value: Any, where: str, version: int) -> Facts:
    v1 = version == 1
    keys = _FACTS if version >= 5 else _FACTS_4 if version >= 3 else _FACTS_2
    d = _object(value, where, keys)
    page_size = _int(d["page_size"], f"{where}.page_size", 1 << 9, (1 << 24) + 1)
    if page_size & (page_size - 1):
        raise _Damage(f"{where}.page_size", f"{page_size} is not a power of two")
    pointer_size = _int(d["pointer_size"], f"{where}.pointer_size", 4, 9)
    if pointer_size not in (4, 8):
        raise _Damage(f"{where}.pointer_size", f"expected 4 or 8, not {pointer_size}")
    thread_sps: dict[int, int] = {}
    for i, pair in enumerate(_list(d, "thread_sps", where)):
        at = f"{where}.thread_sps[{i}]"
        tid, sp = _ints(pair if v1 else _unhex(pair, at, (1,)), at, (_TID, _U64))
        if tid in thread_sps:
            raise _Damage(f"{where}.thread_sps[{i}]", f"thread {tid} appears twice")
        thread_sps[tid] = sp
    unknown = tuple(
        _int(tid, f"{where}.unknown_threads[{i}]", 0, _TID)
        for i, tid in enumerate(_list(d, "unknown_threads", where))
    )
    size = d["thread_stack_size"]
    program_key = program_from = None
    if version >= 3:
        program_key = _optional_key(d["program_key"], f"{where}.program_key")
        program_from = d["program_from"]
        if program_from not in (None, *_PROGRAM_FROM) or (program_from is None) != (
            program_key is None
        ):
            raise _Damage(
                f"{where}.program_from",
                f"expected one of {', '.join(_PROGRAM_FROM)} with a program_key, or null "
                f"without one, not {_show(program_from)}",
            )
    return Facts(
        page_size=page_size,
        pointer_size=pointer_size,
        exe_key=_optional_key(d["exe_key"], f"{where}.exe_key"),
        interp_key=_optional_key(d["interp_key"], f"{where}.interp_key"),
        program_key=program_key,
        program_from=program_from,
        thread_sps=thread_sps,
        unknown_threads=unknown,
        thread_stack_size=None if size is None else _int(size, f"{where}.thread_stack_size"),
        runtimes=_runtimes(d["runtimes"], f"{where}.runtimes") if version >= 5 else None,
        heap_ranges=_heap_ranges(d, where) if version >= 5 else (),
    )


def _runtimes(value: Any, where: str) -> tuple[Runtime, ...] | None:
    if value is None:
        return None
    if type(value) is not list:
        raise _Damage(where, f"expected a list or null, not {_show(value)}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        d = _object(item, at, _RUNTIME)
        name, found_by = d["name"], d["found_by"]
        if name not in ALLOCATORS:
            raise _Damage(
                f"{at}.name", f"expected one of {', '.join(ALLOCATORS)}, not {_show(name)}"
            )
        if found_by not in _FOUND_BY:
            raise _Damage(
                f"{at}.found_by", f"expected one of {', '.join(_FOUND_BY)}, not {_show(found_by)}"
            )
        out.append(
            Runtime(
                name,
                _read_text(d["object"], f"{at}.object"),
                _bool(d["malloc"], f"{at}.malloc"),
                found_by,
            )
        )
    return tuple(out)


def _heap_ranges(d: JSONDict, where: str) -> tuple[HeapRange, ...]:
    out = []
    details = {detail.value: detail for detail in Detail}
    for i, item in enumerate(_list(d, "heap_ranges", where)):
        at = f"{where}.heap_ranges[{i}]"
        if type(item) is not list or len(item) != 7:
            raise _Damage(
                at,
                "expected [start, end, kind, detail, allocator, heuristic, reserve], "
                f"not {_show(item)}",
            )
        start, end = _ints(_unhex(item[:2], at, (0, 1)), at, (_U64, _U64))
        kind, detail, allocator = item[2], details.get(item[3]), item[4]
        if not start < end:
            raise _Damage(at, f"the range 0x{start:x}-0x{end:x} is empty")
        if kind not in KINDS:
            raise _Damage(f"{at}[2]", f"expected a kind, not {_show(kind)}")
        if detail is None:
            raise _Damage(f"{at}[3]", f"expected a detail's key, not {_show(item[3])}")
        if allocator not in ALLOCATORS:
            raise _Damage(f"{at}[4]", f"expected an allocator's key, not {_show(allocator)}")
        reserve = None if item[6] is None else details.get(item[6])
        if item[6] is not None and reserve is None:
            raise _Damage(f"{at}[6]", f"expected a detail's key or null, not {_show(item[6])}")
        heuristic = _bool(item[5], f"{at}[5]")
        out.append(HeapRange(start, end, kind, detail, allocator, heuristic, reserve))
    return tuple(out)


def _optional_key(value: Any, where: str) -> FileKey | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != 2:
        raise _Damage(where, f"expected [dev, inode] or null, not {_kind(value)}")
    return (_dev(value[0], f"{where}[0]"), _int(value[1], f"{where}[1]"))


_DEV = re.compile(r"[0-9a-f]+:[0-9a-f]+")  # "%02x:%02x", as maps prints it


def _dev(value: Any, where: str) -> str:
    if type(value) is not str or not _DEV.fullmatch(value):
        raise _Damage(where, f'expected a device as maps shows one ("fe:01"), not {_show(value)}')
    return value


_HEX_ADDRESS = re.compile(r"[0-9a-f]{1,16}")


def _page_states(
    value: Any, where: str, mappings: list[Mapping], page_size: int, v1: bool
) -> dict[int, str]:
    if type(value) is not dict:
        raise _Damage(where, f"expected an object, not {_kind(value)}")
    by_start = {m.start: m for m in mappings}
    states: dict[int, str] = {}
    for key, pages in value.items():
        at = f"{where}[{_show(key)}]"
        if not (_HEX_ADDRESS if v1 else _ADDRESS).fullmatch(key):
            raise _Damage(at, "expected a mapping's start address in hex")
        start = int(key, 16)
        if start in states:
            raise _Damage(at, f"the mapping at {start:x} appears twice")
        m = by_start.get(start)
        if m is None:
            raise _Damage(at, "no mapping starts there")
        if type(pages) is not str:
            raise _Damage(at, f"expected a string, not {_kind(pages)}")
        if m.size % page_size or len(pages) != m.size // page_size:
            raise _Damage(
                at,
                f"{len(pages)} page states for a mapping of {m.size} bytes "
                f"({m.size / page_size:g} pages of {page_size} bytes)",
            )
        if pages.strip("rs."):
            raise _Damage(at, "page states are 'r', 's' or '.' only")
        states[start] = pages
    return states


def _files(
    value: Any, where: str, v1: bool
) -> tuple[dict[FileKey, ElfLayout | None], dict[FileKey, SymbolTable]]:
    layouts: dict[FileKey, ElfLayout | None] = {}
    symbols: dict[FileKey, SymbolTable] = {}
    if type(value) is not list:
        raise _Damage(where, f"expected an array, not {_kind(value)}")
    for i, entry in enumerate(value):
        at = f"{where}[{i}]"
        d = _object(entry, at, _FILE)
        key = (_dev(d["dev"], f"{at}.dev"), _int(d["inode"], f"{at}.inode"))
        if key in layouts:
            raise _Damage(at, f"the file {key[0]} {key[1]} appears twice")
        layout = None if d["layout"] is None else _layout(d["layout"], f"{at}.layout", v1)
        layouts[key] = layout
        if d["symbols"] is not None:
            if layout is None:
                raise _Damage(f"{at}.symbols", "symbols for a file that is not ELF (layout null)")
            symbols[key] = _symbol_table(d["symbols"], f"{at}.symbols", v1)
    return layouts, symbols


def _layout(value: Any, where: str, v1: bool) -> ElfLayout:
    d = _object(value, where, _LAYOUT)
    if d["elf_class"] not in (32, 64) or type(d["elf_class"]) is not int:
        raise _Damage(f"{where}.elf_class", f"expected 32 or 64, not {_show(d['elf_class'])}")
    if d["endian"] not in ("little", "big"):
        raise _Damage(f"{where}.endian", f"expected 'little' or 'big', not {_show(d['endian'])}")
    file_size = _int(d["file_size"], f"{where}.file_size")
    segments = []
    for i, raw in enumerate(_list(d, "segments", where)):
        at = f"{where}.segments[{i}]"
        seg = Segment(*_ints(raw if v1 else _unhex(raw, at, (2, 3)), at, _SEGMENT_LIMITS))
        # What read_elf refuses, refused here too: the classifier relies on it.
        if seg.type == PT_LOAD and seg.offset + seg.filesz > file_size:
            raise _Damage(at, "a LOAD segment reaches past the end of the file")
        if seg.type == PT_LOAD and seg.memsz < seg.filesz:
            raise _Damage(at, "a LOAD segment smaller in memory than in the file")
        segments.append(seg)
    sections = []
    for i, raw in enumerate(_list(d, "sections", where)):
        at = f"{where}.sections[{i}]"
        if type(raw) is not list or len(raw) != 7:
            raise _Damage(at, "expected a name and 6 integers")
        numbers = raw[1:] if v1 else _unhex(raw, at, (3, 4))[1:]
        sections.append(
            Section(_read_text(raw[0], f"{at}[0]"), *_ints(numbers, at, _SECTION_LIMITS, 1))
        )
    interpreter = d["interpreter"]
    build_id = d["build_id"]
    if build_id is not None and (type(build_id) is not str or not _ishex_address(build_id)):
        raise _Damage(f"{where}.build_id", f"expected hex digits or null, not {_show(build_id)}")
    return ElfLayout.build(
        elf_class=d["elf_class"],
        endian=d["endian"],
        machine=_int(d["machine"], f"{where}.machine", 0, 1 << 16),
        type=_int(d["type"], f"{where}.type", 0, 1 << 16),
        entry=_int(d["entry"] if v1 else _address(d["entry"], f"{where}.entry"), f"{where}.entry"),
        segments=segments,
        sections=sections,
        interpreter=None
        if interpreter is None
        else _read_text(interpreter, f"{where}.interpreter"),
        build_id=build_id,
        file_size=file_size,
    )


def _ishex_address(text: str) -> bool:
    return len(text) % 2 == 0 and not text.strip("0123456789abcdef")


def _symbol_table(value: Any, where: str, v1: bool) -> SymbolTable:
    d = _object(value, where, _SYMBOLS)
    source = d["source"]
    if source not in (".symtab", ".dynsym", None):
        raise _Damage(
            f"{where}.source", f"expected '.symtab', '.dynsym' or null, not {_show(source)}"
        )
    raw = _list(d, "symbols", where)
    if source is None and raw:
        raise _Damage(f"{where}.symbols", "symbols without a source table")
    symbols: list[Symbol] = []
    append = symbols.append
    for i, entry in enumerate(raw):
        if (
            not v1
            and type(entry) is list
            and len(entry) == 4
            and type(entry[1]) is str
            and _ADDRESS.fullmatch(entry[1])
        ):
            entry = [entry[0], int(entry[1], 16), *entry[2:]]
        # The common case in one test: a library can have 100,000 symbols.
        if (
            type(entry) is list
            and len(entry) == 4
            and type(entry[0]) is str
            and type(entry[1]) is int
            and type(entry[2]) is int
            and type(entry[3]) is int
            and 0 <= entry[1] < _U64
            and 0 <= entry[2] < _U64
            and 0 <= entry[3] < 16
        ):
            append(Symbol(*entry))
            continue
        at = f"{where}.symbols[{i}]"
        if type(entry) is not list or len(entry) != 4:
            raise _Damage(at, "expected [name, value, size, type]")
        if not v1 and type(entry[1]) is not int:
            _address(entry[1], f"{at}[1]")  # not an ADDRESS: say so, here
        value_, size, kind = _ints(entry[1:], at, (_U64, _U64, 16), 1)
        append(Symbol(_read_text(entry[0], f"{at}[0]"), value_, size, kind))
    return SymbolTable.build(symbols, source)


# --- the checks, each naming where it looked ----------------------------------------------


def _object(value: Any, where: str, keys: tuple[str, ...]) -> JSONDict:
    if type(value) is not dict:
        raise _Damage(where, f"expected an object, not {_kind(value)}")
    if len(value) != len(keys) or any(k not in value for k in keys):
        missing = next((k for k in keys if k not in value), None)
        if missing is not None:
            raise _Damage(where, f"the key {missing!r} is missing")
        extra = next(k for k in value if k not in keys)
        raise _Damage(where, f"unexpected key {_show(extra)}")
    return value


def _list(d: JSONDict, key: str, where: str = "") -> list[Any]:
    value = d[key]
    if type(value) is not list:
        raise _Damage(f"{where}.{key}" if where else key, f"expected an array, not {_kind(value)}")
    return value


_ADDRESS = re.compile(r"0x[0-9a-f]{1,16}")


def _address(value: Any, where: str) -> int:
    """An ADDRESS (see the docstring): "0x" and 1 to 16 lower-case hex digits."""
    if type(value) is not str or not _ADDRESS.fullmatch(value):
        raise _Damage(where, f'expected an address as "0x" and hex digits, not {_show(value)}')
    return int(value, 16)


def _unhex(value: Any, where: str, positions: tuple[int, ...]) -> Any:
    """A list whose items at `positions` are ADDRESSes, with those made integers."""
    if type(value) is not list:
        return value  # _ints says what is wrong
    out = list(value)
    for i in positions:
        if i < len(out):
            out[i] = _address(out[i], f"{where}[{i}]")
    return out


def _int(value: Any, where: str, low: int = 0, high: int = _U64) -> int:
    """An integer in [low, high): JSON true and 1.0 are not integers."""
    if type(value) is not int:
        raise _Damage(where, f"expected an integer, not {_kind(value)}")
    if not low <= value < high:
        raise _Damage(where, f"{_show(value)} is out of range ({low} to {high - 1})")
    return value


def _ints(value: Any, where: str, limits: tuple[int, ...], first: int = 0) -> list[int]:
    """A list of len(limits) integers, each in [0, limit); `first`: the index of value[0]."""
    if (
        type(value) is not list
        or len(value) != len(limits)
        or any(type(v) is not int for v in value)
    ):
        what = f"{len(limits)} integers" if not first else f"a name and {len(limits)} integers"
        raise _Damage(where, f"expected {what}")
    for i, (v, limit) in enumerate(zip(value, limits), first):
        if not 0 <= v < limit:
            raise _Damage(f"{where}[{i}]", f"{_show(v)} is out of range (0 to {limit - 1})")
    return value


def _read_text(value: Any, where: str) -> str:
    """A TEXT (see the docstring): a string, {"base64": ...} or {"codepoints": [...]}."""
    if type(value) is str:
        return value
    if type(value) is dict and len(value) == 1:
        if "base64" in value:
            return _base64(value["base64"], f"{where}.base64").decode("utf-8", "surrogateescape")
        if "codepoints" in value:
            points = value["codepoints"]
            if type(points) is list and all(type(c) is int and 0 <= c <= 0x10FFFF for c in points):
                return "".join(map(chr, points))
            raise _Damage(f"{where}.codepoints", "expected integers from 0 to 0x10ffff")
    raise _Damage(where, f'expected a string or {{"base64": ...}}, not {_kind(value)}')


def _read_bytes(value: Any, where: str) -> bytes:
    """A BYTES (see the docstring): a string of UTF-8 text, or {"base64": ...}."""
    if type(value) is str:
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:  # a \udcff escape: not text any UTF-8 holds
            raise _Damage(where, "a lone surrogate (\\udXXX escape) in text") from None
    if type(value) is dict and len(value) == 1 and "base64" in value:
        return _base64(value["base64"], f"{where}.base64")
    raise _Damage(where, f'expected a string or {{"base64": ...}}, not {_kind(value)}')


def _base64(value: Any, where: str) -> bytes:
    if type(value) is not str:
        raise _Damage(where, f"expected a string, not {_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise _Damage(where, f"not base64: {err}") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) is int:
        return "an integer"
    if type(value) is float:
        return "a number with a fraction or exponent"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "an array"
    return "an object"


def _show(value: Any) -> str:
    """A value for an error message: short, and on one line."""
    if type(value) is int and value.bit_length() > 128:
        return f"an integer of {value.bit_length()} bits"
    if type(value) is str:
        return repr(value if len(value) <= 40 else value[:40] + "...")
    if type(value) in (int, float) or value is None or type(value) is bool:
        return json.dumps(value)
    return _kind(value)


# --- plain maps and smaps texts --------------------------------------------------------

# A "Name: value" line of smaps (fs/proc/task_mmu.c): "Rss:   8 kB", "VmFlags: rd mr".
_SMAPS_FIELD = re.compile(rb"[A-Za-z][A-Za-z0-9_]*:(?:[ \t]|$)")


def smaps_maps_text(data: bytes) -> bytes:
    """The maps text inside an smaps text: its mapping lines, each ending in a newline.

    Raises MapsFormatError for a line that is neither a mapping in maps format
    nor a "Name: value" line following one.
    """
    headers: list[tuple[int, bytes]] = []
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line:
            continue
        if _SMAPS_FIELD.match(line):
            if not headers:
                raise MapsFormatError(
                    f"line {number} comes before any mapping line: {_shown_line(line)}"
                )
            continue
        headers.append((number, line))
    text = b"".join(line + b"\n" for _, line in headers)
    try:
        parse_maps(text)
    except MapsFormatError:
        for number, line in headers:  # which one: checked alone, it fails alone
            try:
                parse_maps(line)
            except MapsFormatError:
                raise MapsFormatError(
                    f"line {number} is neither a mapping in /proc/PID/maps format nor "
                    f"a 'Name: value' line of smaps: {_shown_line(line)}"
                ) from None
        raise
    return text


def _line_numbers(lines: list[bytes]) -> list[int]:
    """The line number of each mapping line (a maps line, or an smaps block's header)."""
    return [n for n, line in enumerate(lines, 1) if line.strip() and not _SMAPS_FIELD.match(line)]


def _blocks(lines: list[bytes]) -> list[bytes]:
    """Each mapping's text: its line, and for smaps the "Name: value" lines after it."""
    blocks: list[list[bytes]] = []
    for line in lines:
        if not line.strip():
            continue
        if _SMAPS_FIELD.match(line):
            blocks[-1].append(line)  # smaps_maps_text saw a mapping line before it
        else:
            blocks.append([line])
    return [b"".join(part + b"\n" for part in block) for block in blocks]


def _address_order(mappings: list[Mapping], lines: list[bytes]) -> list[int] | None:
    """None for mappings in address order; else the order that sorts them.

    A saved text is checked, not trusted: lines out of order are all kept (and
    sorted, with a warning), and lines that overlap, which no kernel prints for
    one moment, are refused, naming both.
    """
    ordered = all(a.end <= b.start for a, b in zip(mappings, mappings[1:]))
    if ordered:
        return None
    order = sorted(range(len(mappings)), key=lambda i: mappings[i].start)
    for i, j in zip(order, order[1:]):
        a, b = mappings[i], mappings[j]
        if b.start < a.end:
            numbers = _line_numbers(lines)
            first, second = sorted((numbers[i], numbers[j]))
            raise MapsFormatError(
                f"lines {first} and {second} overlap ({a.start:x}-{a.end:x} and "
                f"{b.start:x}-{b.end:x}): no kernel maps one address twice"
            )
    return order


def _shown_line(line: bytes) -> str:
    return repr(line[:80].decode("ascii", "backslashreplace"))


def _from_text(data: bytes, path: str, mtime: float) -> Snapshot:
    lines = data.split(b"\n")
    kind = "smaps" if any(_SMAPS_FIELD.match(line) for line in lines) else "maps"
    name = os.path.basename(path)
    warnings = []
    try:
        maps = smaps_maps_text(data) if kind == "smaps" else data
        mappings = parse_maps(maps, every_line=True)
        order = _address_order(mappings, lines)
        if order is not None:
            blocks = _blocks(lines)
            data = b"".join(blocks[i] for i in order)
            maps = smaps_maps_text(data) if kind == "smaps" else data
            mappings = [mappings[i] for i in order]
            first = _line_numbers(lines)[next(i for i, j in enumerate(order) if i != j)]
            warnings.append(
                f"{name}: its lines are not in address order (the first out of place is "
                f"line {first}): all {len(mappings)} were read, and sorted"
            )
        if kind == "smaps":
            parse_smaps(data)  # its figures too: replay reads them
    except MapsFormatError as err:
        raise _error(f"{path}: neither a procmap snapshot nor a maps text: {err}") from None
    facts = Facts(
        page_size=os.sysconf("SC_PAGE_SIZE"),
        pointer_size=8 if mappings[-1].end > 1 << 32 else 4,
    )
    return Snapshot(
        maps=maps,
        smaps=data if kind == "smaps" else None,
        page_states={},
        info=ProcessInfo(pid=0, name=name, cmdline=(), user="?", uid=-1, threads=0, state="?"),
        facts=facts,
        layouts={},
        symbols={},
        warnings=[
            f"{name}: a plain {kind} text, without ELF headers or thread stack pointers: "
            "regions are classified by names and permissions alone",
            *warnings,
        ],
        kernel="",
        machine="",
        hostname="",
        saved_at=mtime,
        procmap_version="",
        source=kind,
    )
