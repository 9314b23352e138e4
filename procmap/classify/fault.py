"""Why a program died: a fatal signal, joined to the classified map, as a verdict.

Pure: what the kernel said (siginfo, the faulting thread's registers) and what
the process held (its classified map, its memory, as callables) in; a Fault
out, with a stable `cause` key and the lesson's words.  The same analysis runs
on a live process stopped by ptrace (views/crash.py) and on a core file
(views/core.py): each only fills a FaultInput.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import NamedTuple

from ..arch import Arch
from ..kernel.signals import BUS_ADRERR, SEGV_ACCERR, SI_KERNEL, SIGABRT, SIGBUS, SIGSEGV, Siginfo
from ..model import (
    Detail,
    JSONDict,
    Location,
    ProcessMap,
    Region,
    Space,
    SymbolsOf,
    hex_address,
    hex_or_none,
    space_of,
)
from ..units import human_size
from .instruction import Access, Instruction, decode
from .locate import locate


class FaultInput(NamedTuple):
    """Everything the analysis reads, however it was gathered."""

    arch: Arch
    siginfo: Siginfo
    registers: dict[str, int]  # the faulting thread's, by the names in `arch`
    tid: int
    thread_name: str | None
    pmap: ProcessMap
    symbols: SymbolsOf  # an image's symbol table, or None
    read_memory: Callable[[int, int], bytes | None]  # (address, size): None if unreadable
    file_size: Callable[[Region], int | None]  # a file mapping's file size now, if known
    mmap_min_addr: int = 65536  # /proc/sys/vm/mmap_min_addr
    source: str = "live"  # "live" (ptrace) or "core"


# --- the verdicts --------------------------------------------------------------------------

# Stable keys of Fault.cause, and the lesson's account of each, in procmap's words.
CAUSES = {
    "null-pointer": (
        "The lowest pages of every process are never mapped (below vm.mmap_min_addr), so "
        "that a pointer left NULL, a field reached through one, or a call through a NULL "
        "function pointer faults at once instead of touching whatever lies there."
    ),
    "stack-overflow": (
        "Each call takes a frame from the stack, and the stack cannot grow past its limit: "
        "below it the kernel keeps a gap (a guard page for a thread's stack) that nothing "
        "may touch. Deep or endless recursion, or a large local array, runs into it."
    ),
    "write-to-read-only": (
        "Text and read-only data are mapped without write permission, so a program cannot "
        "change its own instructions or constants by accident (or be made to by an "
        "attacker); RELRO pages are written by the dynamic linker at start-up and made "
        "read-only before main runs."
    ),
    "execute-non-executable": (
        "Only text is mapped executable. Heap, stack and data are not (NX), so a "
        "corrupted return address or function pointer that points at data faults instead "
        "of running whatever bytes are there."
    ),
    "kernel-address": (
        "The upper half of the address space belongs to the kernel; a process can never "
        "read or write it, only ask the kernel for work through system calls."
    ),
    "non-canonical-address": (
        "Not every 64-bit number is an address: between the process's half and the "
        "kernel's lies a hole of non-canonical addresses that can never be mapped. The "
        "processor refuses them with a general-protection fault, for which the kernel "
        "reports no address; procmap recomputes it from the instruction. A pointer made "
        "of other data (text, a counter, freed memory) typically looks like this."
    ),
    "unmapped": (
        "Memory that was mapped and then unmapped (munmap, or a large block that free "
        "gave back to the kernel) leaves a gap where old pointers still point; a pointer "
        "computed wrongly lands in one too."
    ),
    "no-access": (
        "This mapping has no permissions at all (PROT_NONE): address space reserved so "
        "that nothing else is put there, or a guard that must never be touched."
    ),
    "beyond-end-of-file": (
        "A file mapping may extend past the end of its file, but a page that lies wholly "
        "past the end has no data to hold, so touching it raises SIGBUS. The file was "
        "most likely made shorter after it was mapped."
    ),
    "abort": (
        "The program stopped itself with abort(): a check found something wrong and "
        "ending at once was safer than going on."
    ),
    "other": "",
}

# The verdict's name, as people read it.
CAUSE_TITLES = {
    "null-pointer": "null pointer",
    "stack-overflow": "stack overflow",
    "write-to-read-only": "write to read-only memory",
    "execute-non-executable": "jump into memory that is not executable",
    "kernel-address": "kernel address",
    "non-canonical-address": "non-canonical address",
    "unmapped": "unmapped address",
    "no-access": "access to a no-access mapping",
    "beyond-end-of-file": "past the end of a mapped file",
    "abort": "abort",
    "other": "crash",
}

# What aborted, from the message glibc leaves in __abort_msg (structured keys).
_ABORTERS = (
    ("assert", "Assertion `"),
    ("stack-protector", "*** stack smashing detected ***"),
    ("fortify", "*** buffer overflow detected ***"),
    ("malloc", "malloc"),
    ("malloc", "free("),
    ("malloc", "free():"),
    ("malloc", "realloc("),
    ("malloc", "double free"),
    ("malloc", "corrupted"),
    ("malloc", "munmap_chunk"),
    ("malloc", "tcache"),
)

_OTHER = {
    "SIGFPE": "An arithmetic instruction failed: {code}.",
    "SIGILL": (
        "The processor met an instruction it will not execute ({code}). Compilers emit "
        "one on purpose (ud2 on x86-64, from __builtin_trap) where code must never be "
        "reached; otherwise the program counter left the program's instructions."
    ),
    "SIGTRAP": (
        "A breakpoint instruction ran with no debugger to catch it ({code}): a "
        "compiled-in breakpoint, or a debugger that left one behind."
    ),
}

_CODE_WORDS = {
    "FPE_INTDIV": "integer division by zero",
    "FPE_INTOVF": "integer overflow",
    "FPE_FLTDIV": "floating-point division by zero",
    "ILL_ILLOPN": "an illegal operand",
    "ILL_ILLOPC": "an illegal opcode",
    "ILL_PRVOPC": "a privileged instruction",
    "TRAP_BRKPT": "a breakpoint",
    "SI_KERNEL": "raised by the kernel",
}

STACK_GUARD_GAP = 256  # pages: the kernel's stack_guard_gap (mm/mmap.c), 1 MiB of 4 KiB pages


class Frame(NamedTuple):
    """A return address found on the stack, and where it points."""

    address: int
    location: Location
    repeats: int = 1  # found this many times (a recursion leaves the same one in each frame)


class StackState(NamedTuple):
    """The faulting thread's stack pointer against its stack."""

    sp: int
    stack: Region | None  # the thread's stack region (sp inside it, or just above sp)
    guard: Region | None  # the guard page below it, if one is mapped
    used: int | None  # bytes from sp to the top of the stack
    left: int | None  # bytes from the bottom of the stack to sp (negative: sp is past it)


class Fault(NamedTuple):
    signal: int
    signal_name: str
    code: int
    code_name: str
    address: int | None  # the address the access went to
    reported_address: int | None  # si_addr, as the kernel reported it
    address_from: str | None  # "siginfo", "instruction", or None
    access: str | None  # "read", "write", "execute"
    cause: str  # a key of CAUSES
    location: Location | None  # where `address` is
    pc: Location
    instruction: Instruction | None
    stack: StackState
    tid: int
    thread_name: str | None
    explanation: str
    sender: int | None = None  # the PID that sent the signal (kill, raise, abort)
    abort_message: str | None = None
    aborted_by: str | None = None  # "assert", "malloc", "stack-protector", "fortify"
    called_from: Location | None = None  # for a jump through a bad pointer: the caller
    frames: tuple[Frame, ...] = ()
    source: str = "live"

    def to_dict(self) -> JSONDict:
        st = self.stack
        return {
            "signal": self.signal_name,
            "signal_number": self.signal,
            "code": self.code_name,
            "code_number": self.code,
            "address": hex_or_none(self.address),
            "reported_address": hex_or_none(self.reported_address),
            "address_from": self.address_from,
            "access": self.access,
            "cause": self.cause,
            "region": self.location.to_dict() if self.location else None,
            "pc": {**self.pc.to_dict(), "instruction": _instruction_dict(self.instruction)},
            "sp": {
                "address": hex_address(st.sp),
                "stack": _region_dict(st.stack),
                "guard": _region_dict(st.guard),
                "used": st.used,
                "left": st.left,
            },
            "thread": {"tid": self.tid, "name": self.thread_name},
            "sender": self.sender,
            "abort": (
                None
                if self.cause != "abort"
                else {"message": self.abort_message, "by": self.aborted_by}
            ),
            "called_from": self.called_from.to_dict() if self.called_from else None,
            "frames": [
                {
                    "address": hex_address(f.address),
                    **_brief_location(f.location),
                    "repeats": f.repeats,
                }
                for f in self.frames
            ],
            "frames_from": "stack scan (heuristic)" if self.frames else None,
            "explanation": self.explanation,
            "source": self.source,
        }


def _instruction_dict(insn: Instruction | None) -> JSONDict | None:
    return insn.to_dict() if insn else None


def _region_dict(r: Region | None) -> JSONDict | None:
    if r is None:
        return None
    return {
        "start": hex_address(r.start),
        "end": hex_address(r.end),
        "kind": r.kind,
        "detail": r.detail.value,
        "tid": r.tid,
    }


def _brief_location(loc: Location) -> JSONDict:
    return {
        "object": loc.region.object if loc.region else None,
        "symbol": loc.symbol,
        "symbol_offset": loc.symbol_offset,
    }


def analyze(inp: FaultInput) -> Fault:
    """The verdict on a fatal signal: what was touched, how, where, and why it faulted."""
    si, arch, regs, pmap = inp.siginfo, inp.arch, inp.registers, inp.pmap
    pc, sp = regs.get(arch.pc, 0), regs.get(arch.sp, 0)
    space = space_of(pmap.regions, pmap.images)
    code = _code_at(inp, pc)
    insn = decode(arch, code, pc, regs) if code else None
    address, address_from, access = _address_and_access(si, pc, insn, pmap)
    location = None if address is None else _locate(inp, address, space)
    pc_location = _locate(inp, pc, space)
    stack = _stack_state(pmap, sp, inp.tid)
    fault = Fault(
        signal=si.signo,
        signal_name=si.name,
        code=si.code,
        code_name=si.code_name,
        address=address,
        reported_address=si.addr,
        address_from=address_from,
        access=access,
        cause="other",
        location=location,
        pc=pc_location,
        instruction=insn,
        stack=stack,
        tid=inp.tid,
        thread_name=inp.thread_name,
        explanation="",
        sender=si.pid if si.sent else None,
        source=inp.source,
    )
    cause = _cause(fault, inp)
    fault = fault._replace(cause=cause)
    if cause == "abort":
        message = read_abort_message(inp)
        fault = fault._replace(abort_message=message, aborted_by=_aborted_by(message))
    if access == "execute" and address == pc:
        fault = fault._replace(called_from=_caller(inp, sp))
    fault = fault._replace(frames=tuple(scan_stack(inp, stack)))
    return fault._replace(explanation=explain(fault, inp))


def _locate(inp: FaultInput, address: int, space: Space | None = None) -> Location:
    """locate(), naming a symbol only if the address is inside it.

    A stripped library keeps only its exported symbols: the nearest one below
    an internal function is another function, and naming it would mislead.
    The location then names the object and the offset into it.
    """
    loc = locate(inp.pmap, address, inp.symbols, space)
    if loc.symbol is None or loc.image is None:
        return loc
    table = inp.symbols(loc.image)
    found = table.lookup(address - loc.image.bias) if table else None
    if found is None or found[0].size and found[1] >= found[0].size:
        return loc._replace(symbol=None, symbol_offset=None)
    return loc


def _code_at(inp: FaultInput, pc: int) -> bytes | None:
    """Up to 16 bytes at pc (an x86-64 instruction is at most 15), fewer at a page's end."""
    code = inp.read_memory(pc, 16)
    if code is None:
        page = inp.pmap.page_size
        rest = page - pc % page
        if rest < 16:
            code = inp.read_memory(pc, rest)
    return code


def _address_and_access(
    si: Siginfo, pc: int, insn: Instruction | None, pmap: ProcessMap
) -> tuple[int | None, str | None, str | None]:
    """The address the access went to, where that came from, and the access."""
    if si.signo not in (SIGSEGV, SIGBUS):
        # SIGILL, SIGFPE: the instruction's address; int3's SIGTRAP (SI_KERNEL) gives 0.
        if not si.addr:
            return None, None, None
        return si.addr, "siginfo", None
    address = si.addr
    if address is not None and address == pc:
        return address, "siginfo", "execute"  # the fetch itself faulted
    if si.code == SI_KERNEL or address is None:
        # A general-protection fault: the kernel reports address 0, the operand knows.
        if insn is not None:
            chosen = _suspect(insn, pmap)
            if chosen is not None:
                return chosen.address, "instruction", chosen.kind
        return None, None, None
    if insn is None:
        return address, "siginfo", None
    for acc in insn.accesses:
        if acc.address is not None and _touches(acc, address, pmap.page_size):
            return address, "siginfo", acc.kind
    explicit = [a for a in insn.accesses if not a.implicit]
    return address, "siginfo", explicit[0].kind if explicit else None


def _touches(acc: Access, address: int, page: int) -> bool:
    assert acc.address is not None
    end = acc.address + max(acc.size or 1, 1)
    return acc.address <= address < end or acc.address // page == address // page


def _suspect(insn: Instruction, pmap: ProcessMap) -> Access | None:
    """Of an instruction's accesses, the one that cannot be made: outside every region."""
    known = [a for a in insn.accesses if a.address is not None]
    for acc in known:
        assert acc.address is not None
        if pmap.region_at(acc.address) is None:
            return acc
    return known[0] if known else None


def _stack_state(pmap: ProcessMap, sp: int, tid: int) -> StackState:
    region = pmap.region_at(sp)
    if region is not None and _is_guard_below_stack(pmap, region):
        # sp is in a thread's guard: the classifier found the stack by the stack
        # pointer, which is outside it, so it could not label the pair.
        stack = pmap.region_at(region.end)
        assert stack is not None
        return StackState(sp, stack, region, stack.end - sp, sp - stack.start)
    if region is None or region.kind != "stack":
        # Past the bottom: the stack is the nearest stack region above.
        above = [r for r in pmap.regions if r.kind == "stack" and r.start > sp]
        region = min(above, key=lambda r: r.start) if above else None
        if region is not None and region.detail == Detail.GUARD_PAGE:
            region = pmap.region_at(region.end)
    elif region.detail == Detail.GUARD_PAGE:
        region = pmap.region_at(region.end)
    if region is None or region.kind != "stack":
        return StackState(sp, None, None, None, None)
    below = pmap.region_at(region.start - 1)
    guard = below if below is not None and below.detail == Detail.GUARD_PAGE else None
    return StackState(sp, region, guard, region.end - sp, sp - region.start)


def _is_guard_below_stack(pmap: ProcessMap, region: Region) -> bool:
    """A PROT_NONE region right below anonymous read-write memory: a thread's guard."""
    if region.detail == Detail.GUARD_PAGE:
        return True
    if not region.perms.startswith("---") or region.path:
        return False
    above = pmap.region_at(region.end)
    return above is not None and above.perms.startswith("rw") and not above.path


def _cause(f: Fault, inp: FaultInput) -> str:
    if f.signal == SIGABRT:
        return "abort"
    if f.signal not in (SIGSEGV, SIGBUS):
        return "other"
    if f.address is None or f.location is None:
        return "other"
    loc, region = f.location, f.location.region
    if loc.unmapped == "kernel":
        return "kernel-address"
    if loc.unmapped == "non-canonical":
        return "non-canonical-address"
    if _overflowed(f, inp):
        return "stack-overflow"
    if loc.unmapped == "null" or region is None and f.address < inp.mmap_min_addr:
        return "null-pointer"
    if region is None:
        return "unmapped"
    if f.signal == SIGBUS and (region.path or "").startswith("/") and _past_eof(f, inp, region):
        return "beyond-end-of-file"
    perms = region.perms
    if perms.startswith("---"):
        return "no-access"
    access = f.access
    if access is None and f.code == SEGV_ACCERR and perms[0] == "r" and perms[1] != "w":
        access = "write"  # a read would not have faulted; no instruction to decode
    if access == "write" and perms[1] != "w":
        return "write-to-read-only"
    if access == "execute" and perms[2] != "x":
        return "execute-non-executable"
    return "other"


def _overflowed(f: Fault, inp: FaultInput) -> bool:
    """The access is in, or just below, a stack's guard gap."""
    assert f.location is not None and f.address is not None
    loc = f.location
    if loc.region is not None:
        if loc.region.detail == Detail.GUARD_PAGE:
            return True
        guard = f.stack.guard
        # The access is in the guard below the faulting thread's own stack.
        return guard is not None and guard.start <= f.address < guard.end
    above = loc.above
    if above is None or above.kind != "stack":
        return False
    gap = STACK_GUARD_GAP * inp.pmap.page_size
    return above.start - f.address <= gap or f.stack.sp <= above.start + inp.pmap.page_size


def _past_eof(f: Fault, inp: FaultInput, region: Region) -> bool:
    if f.code != BUS_ADRERR:
        return False
    size = inp.file_size(region)
    if size is None:
        return True  # SIGBUS BUS_ADRERR on a file mapping: no page of the file there
    assert f.address is not None
    page = inp.pmap.page_size
    offset = region.offset + (f.address - region.start)
    return offset >= -(-size // page) * page


def read_abort_message(inp: FaultInput) -> str | None:
    """The message glibc leaves for abort() in __abort_msg (assert, malloc's checks)."""
    for image in inp.pmap.images:
        table = inp.symbols(image)
        if table is None:
            continue
        symbol = next((s for s in table.symbols if s.name == "__abort_msg"), None)
        if symbol is None:
            continue
        raw = inp.read_memory(image.bias + symbol.value, inp.arch.pointer_size)
        if raw is None:
            return None
        pointer = int.from_bytes(raw, "little")
        if not pointer:
            return None
        head = inp.read_memory(pointer, 4)  # struct abort_msg_s { unsigned size; char msg[]; }
        if head is None:
            return None
        size = min(int.from_bytes(head, "little"), 4096)
        body = inp.read_memory(pointer + 4, max(size - 4, 0)) or b""
        text = body.split(b"\0", 1)[0].decode("utf-8", "replace").strip()
        return text or None
    return None


def _aborted_by(message: str | None) -> str | None:
    if not message:
        return None
    for key, prefix in _ABORTERS:
        if prefix in message:
            return key
    return None


def _caller(inp: FaultInput, sp: int) -> Location | None:
    """Where a jump to a bad address came from: the return address a call left."""
    arch = inp.arch
    if arch.link is not None:
        ret = inp.registers.get(arch.link)
    else:
        raw = inp.read_memory(sp, arch.pointer_size)
        ret = int.from_bytes(raw, "little") if raw else None
    if not ret:
        return None
    loc = _locate(inp, ret)
    if loc.region is None or loc.region.perms[2] != "x":
        return None
    return loc


_SCAN = 64 * 1024  # bytes of stack scanned for return addresses
_FRAMES = 16


def scan_stack(inp: FaultInput, stack: StackState) -> list[Frame]:
    """Return addresses on the stack, nearest first: a heuristic backtrace.

    Without unwinding tables, a word on the stack is taken for a return address
    when it points into text just after a call instruction, as a crash reporter
    does when it scans a stack.  Stale words from finished calls can slip in.
    """
    arch, pmap = inp.arch, inp.pmap
    sp = stack.sp
    if stack.stack is not None:
        sp = max(sp, stack.stack.start)  # an overflow: sp is below the stack
    top = stack.stack.end if stack.stack is not None else sp + _SCAN
    size = max(0, min(top - sp, _SCAN))
    size -= size % arch.pointer_size
    data = inp.read_memory(sp, size) if size else None
    if not data:
        return []
    frames: list[Frame] = []
    seen: dict[int, int] = {}  # return address -> its index in frames
    words = struct.unpack(f"<{len(data) // 8}Q", data) if arch.pointer_size == 8 else ()
    for value in words:
        if value in seen:
            i = seen[value]
            frames[i] = frames[i]._replace(repeats=frames[i].repeats + 1)
            continue
        if len(frames) >= _FRAMES:
            continue
        region = pmap.region_at(value)
        if region is None or region.kind != "text" or not _after_call(inp, value):
            continue
        seen[value] = len(frames)
        frames.append(Frame(value, _locate(inp, value)))
    return frames


def _after_call(inp: FaultInput, address: int) -> bool:
    """Whether a call instruction ends exactly at `address`."""
    sizes = (4,) if inp.arch.link is not None else (5, 2, 3, 6, 7)
    before = inp.read_memory(address - 8, 8)
    if before is None:
        return False
    for n in sizes:
        if inp.arch.link is None and n == 5 and before[-5] != 0xE8:
            continue
        if inp.arch.link is None and n != 5 and 0xFF not in before[-n:]:
            continue
        insn = decode(inp.arch, before[-n:], address - n, {})
        if insn is not None and insn.call and insn.size == n:
            return True
    return False


# --- in words --------------------------------------------------------------------------------

_ACCESS_WORDS = {"read": "read from", "write": "write to", "execute": "jump to"}


def headline(f: Fault) -> str:
    """One line: the verdict and the address."""
    what = CAUSE_TITLES[f.cause]
    if f.cause == "abort" and f.abort_message:
        return f"{f.signal_name}: abort: {f.abort_message}"
    if f.cause == "other" and f.code_name in _CODE_WORDS and f.signal_name != "SIGTRAP":
        what = _CODE_WORDS[f.code_name]
    if f.address is None:
        return f"{f.signal_name} ({f.code_name}): {what}"
    if f.access is None:
        return f"{f.signal_name} ({f.code_name}): {what} at 0x{f.address:x}"
    access = _ACCESS_WORDS[f.access]
    return f"{f.signal_name} ({f.code_name}): {what}: a {access} 0x{f.address:x}"


def explain(f: Fault, inp: FaultInput) -> str:
    """The verdict in the lesson's terms: this fault's facts, then the general reason."""
    facts = _facts(f, inp)
    general = CAUSES.get(f.cause, "")
    if f.cause == "other":
        template = _OTHER.get(f.signal_name)
        words = _CODE_WORDS.get(f.code_name, f.code_name)
        general = template.format(code=words) if template else ""
    return " ".join(x for x in (facts, general) if x)


def _facts(f: Fault, inp: FaultInput) -> str:
    loc = f.location
    if f.cause == "abort":
        by = {
            "assert": "An assert() failed",
            "malloc": "glibc's malloc found its own bookkeeping damaged (a double free, "
            "a write past a block's end, or free of a pointer malloc never gave)",
            "stack-protector": "The stack protector found a local buffer overrun",
            "fortify": "A fortified string or memory function caught a buffer overflow",
        }.get(f.aborted_by or "", "")
        said = f'"{f.abort_message}"' if f.abort_message else None
        parts = [by, f"it said {said}" if said and by else said]
        line = ": ".join(p for p in parts if p)
        return f"{line}." if line else ""
    if loc is None or f.address is None:
        return ""
    where = _where_words(loc)
    if f.cause == "null-pointer":
        return f"The address 0x{f.address:x} is {f.address} bytes past NULL."
    if f.cause == "stack-overflow":
        st = f.stack
        if st.stack is not None and st.left is not None:
            whose = st.stack.description
            side = f"{_bytes(-st.left)} below" if st.left < 0 else f"{_bytes(st.left)} above"
            return (
                f"The stack pointer 0x{st.sp:x} is {side} the bottom of the {whose}, "
                f"which holds {_bytes(st.stack.size)}."
            )
        return ""
    if f.cause == "beyond-end-of-file" and loc.region is not None:
        r = loc.region
        offset = r.offset + f.address - r.start
        size = inp.file_size(r)
        known = f" (the file holds {_bytes(size)})" if size is not None else ""
        return f"The page at file offset 0x{offset:x} of {r.path} is past its end{known}."
    if f.cause in ("write-to-read-only", "execute-non-executable", "no-access"):
        perms = loc.region.perms if loc.region else "?"
        symbol = ""
        if loc.symbol is not None:
            symbol = f", in {loc.symbol}" + (
                f"+0x{loc.symbol_offset:x}" if loc.symbol_offset else ""
            )
        return f"The address is in {where}{symbol}, mapped {perms}."
    if f.cause == "unmapped":
        return _gap_words(loc)
    return ""


def _gap_words(loc: Location) -> str:
    """Where an unmapped address lies: the gap, and how far each neighbour is."""
    parts = []
    if loc.below is not None:
        parts.append(
            f"{_bytes(loc.address - loc.below.end)} above the end of {_region_words(loc.below)}"
        )
    if loc.above is not None:
        parts.append(
            f"{_bytes(loc.above.start - loc.address)} below the start of {_region_words(loc.above)}"
        )
    gap = ""
    if loc.bounds is not None:
        gap = f" of {_bytes(loc.bounds[1] - loc.bounds[0])}"
    where = ", ".join(parts)
    return f"Nothing is mapped at 0x{loc.address:x}: it is in a gap{gap}" + (
        f", {where}." if where else "."
    )


def _region_words(r: Region) -> str:
    name = f" of {r.object.rsplit('/', 1)[-1]}" if r.object else ""
    return f"{r.kind}{name} ({r.description}, 0x{r.start:x}-0x{r.end:x})"


def _where_words(loc: Location) -> str:
    r = loc.region
    if r is None:
        return "no region"
    inside = f" of {r.object}" if r.object else ""
    section = f" ({loc.section})" if loc.section else ""
    return f"{r.kind}{section}{inside}: {r.description}"


def _bytes(n: int) -> str:
    return human_size(n)
