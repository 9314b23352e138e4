"""The faulting instruction: what memory it touched, and how (read, write, execute).

The kernel's siginfo gives the address of a page fault but not whether the
access was a read or a write, and for a general-protection fault (x86-64's
non-canonical addresses) it gives no address at all.  Both are in the
instruction: capstone decodes it, and the registers give its memory operand's
address.  One function per architecture, chosen by the table in arch.py.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..arch import Arch


class Access(NamedTuple):
    """One access to memory an instruction makes."""

    kind: str  # "read", "write" or "execute"
    address: int | None  # None where the registers cannot tell it
    size: int | None
    implicit: bool = False  # the stack of a push, call or ret; a call's target


class Instruction(NamedTuple):
    address: int
    size: int
    text: str  # "mov qword ptr [rax], 0"
    accesses: tuple[Access, ...]  # explicit memory operands first
    call: bool = False  # it pushes a return address (x86) or sets the link register
    returns: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"address": f"0x{self.address:x}", "size": self.size, "text": self.text}


_DISASSEMBLERS: dict[str, Any] = {}


def _disassembler(arch: Arch) -> Any:
    md = _DISASSEMBLERS.get(arch.name)
    if md is None:
        import capstone

        cs_arch, cs_mode = (getattr(capstone, name) for name in arch.capstone)
        md = capstone.Cs(cs_arch, cs_mode)
        md.detail = True
        _DISASSEMBLERS[arch.name] = md
    return md


def decode(arch: Arch, code: bytes, pc: int, registers: dict[str, int]) -> Instruction | None:
    """The instruction at `pc` (`code`: the bytes from there), or None if it does not decode."""
    md = _disassembler(arch)
    insn = next(md.disasm(code, pc, 1), None)
    if insn is None:
        return None
    decoder = _x86_64 if arch.name == "x86-64" else _aarch64
    return decoder(md, insn, registers)


# --- x86-64 -----------------------------------------------------------------------------

_MASKS = {64: (1 << 64) - 1, 32: (1 << 32) - 1, 16: 0xFFFF, 8: 0xFF}
_LEGACY = {"a": "rax", "b": "rbx", "c": "rcx", "d": "rdx"}


def _x86_register(name: str, registers: dict[str, int]) -> int | None:
    """A register's value by capstone's name, with the partial registers (eax, r8d, al)."""
    if name in registers:
        return registers[name]
    if name == "rip":
        return registers.get("rip")
    full, bits = None, 64
    if name.startswith("r") and name[1:].rstrip("dwb").isdigit():
        full = name.rstrip("dwb")
        bits = {"d": 32, "w": 16, "b": 8}.get(name[-1], 64)
    elif len(name) == 3 and name[0] == "e":
        full, bits = "r" + name[1:], 32
    elif len(name) == 2 and name[1] in "xl" and name[0] in _LEGACY:
        full, bits = _LEGACY[name[0]], 16 if name[1] == "x" else 8
    elif len(name) == 2 and name in ("si", "di", "sp", "bp"):
        full, bits = "r" + name, 16
    if full is None or full not in registers:
        return None
    return registers[full] & _MASKS[bits]


def _x86_64(md: Any, insn: Any, registers: dict[str, int]) -> Instruction:
    from capstone import CS_AC_READ, CS_AC_WRITE, CS_GRP_CALL, CS_GRP_JUMP, CS_GRP_RET
    from capstone.x86 import X86_OP_MEM, X86_OP_REG

    groups = set(insn.groups)
    call, ret, jump = CS_GRP_CALL in groups, CS_GRP_RET in groups, CS_GRP_JUMP in groups
    next_pc = insn.address + insn.size
    accesses: list[Access] = []
    target: int | None = None
    for op in insn.operands:
        if op.type == X86_OP_MEM:
            address = _x86_address(md, op.mem, registers, next_pc)
            if op.access & CS_AC_READ or (call or jump) and not op.access:
                accesses.append(Access("read", address, op.size))
            if op.access & CS_AC_WRITE:
                accesses.append(Access("write", address, op.size))
            if call or jump:
                target = None  # through memory: known only once that memory is read
        elif (call or jump) and op.type == X86_OP_REG:
            target = _x86_register(md.reg_name(op.reg), registers)
    sp = registers.get("rsp")
    mnemonic = insn.mnemonic
    if sp is not None:
        if call or mnemonic.startswith("push"):
            accesses.append(Access("write", sp - 8, 8, implicit=True))
        elif ret or mnemonic.startswith("pop") or mnemonic == "leave":
            base = registers.get("rbp", sp) if mnemonic == "leave" else sp
            accesses.append(Access("read", base, 8, implicit=True))
    if (call or jump) and target is not None:
        accesses.append(Access("execute", target, None, implicit=True))
    text = f"{mnemonic} {insn.op_str}".strip()
    return Instruction(insn.address, insn.size, text, tuple(accesses), call, ret)


def _x86_address(md: Any, mem: Any, registers: dict[str, int], next_pc: int) -> int | None:
    address = mem.disp
    for reg, scale in ((mem.base, 1), (mem.index, mem.scale)):
        if not reg:
            continue
        name = md.reg_name(reg)
        value = next_pc if name == "rip" else _x86_register(name, registers)
        if value is None:
            return None
        address += value * scale
    if mem.segment:
        segment = md.reg_name(mem.segment)
        if segment in ("fs", "gs"):
            address += registers.get(f"{segment}_base", 0)
    return int(address) & _MASKS[64]


# --- AArch64 ----------------------------------------------------------------------------


def _aarch64(md: Any, insn: Any, registers: dict[str, int]) -> Instruction:
    from capstone import CS_GRP_CALL, CS_GRP_JUMP, CS_GRP_RET
    from capstone.arm64 import ARM64_OP_MEM, ARM64_OP_REG

    groups = set(insn.groups)
    call, ret, jump = CS_GRP_CALL in groups, CS_GRP_RET in groups, CS_GRP_JUMP in groups
    mnemonic = insn.mnemonic
    # capstone 5's access flags on AArch64 memory operands are not reliable: the
    # load/store families say it by name (ld*, st*, and the atomics' swp, cas).
    kind = "write" if mnemonic.startswith(("st", "swp", "cas")) else "read"
    accesses: list[Access] = []
    target: int | None = None
    for op in insn.operands:
        if op.type == ARM64_OP_MEM:
            address = _aarch64_register(md.reg_name(op.mem.base), registers)
            if address is not None:
                if op.mem.index:
                    index = _aarch64_register(md.reg_name(op.mem.index), registers)
                    address = None if index is None else address + index
                if address is not None:
                    address = (address + op.mem.disp) & _MASKS[64]
            accesses.append(Access(kind, address, None))
        elif (call or jump or ret) and op.type == ARM64_OP_REG:
            target = _aarch64_register(md.reg_name(op.reg), registers)
    if ret and target is None:
        target = registers.get("x30")
    if target is not None:
        accesses.append(Access("execute", target, None, implicit=True))
    text = f"{mnemonic} {insn.op_str}".strip()
    return Instruction(insn.address, insn.size, text, tuple(accesses), call, ret)


def _aarch64_register(name: str, registers: dict[str, int]) -> int | None:
    if name in registers:
        return registers[name]
    if name.startswith("w") and f"x{name[1:]}" in registers:
        return registers[f"x{name[1:]}"] & _MASKS[32]
    return {"xzr": 0, "wzr": 0, "lr": registers.get("x30"), "fp": registers.get("x29")}.get(name)
