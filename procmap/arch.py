"""What procmap needs to know about a processor: one small table per architecture.

Registers come from the kernel in its `user_regs_struct` order (PTRACE_GETREGSET
with NT_PRSTATUS, and a core's NT_PRSTATUS note: the same layout), so each
architecture is the list of its register names in that order, which of them
are the program counter, the stack pointer and the link register, and what the
disassembler (capstone) calls it.  Everything that reads registers or decodes
instructions goes through this table; nothing else names a register.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple


class Arch(NamedTuple):
    name: str  # as people write it: "x86-64"
    machine: int  # ELF e_machine
    pointer_size: int
    registers: tuple[str, ...]  # the kernel's user_regs_struct, in order
    pc: str
    sp: str
    link: str | None  # where a call leaves its return address, if in a register
    capstone: tuple[str, str]  # capstone's CS_ARCH_* and CS_MODE_* names
    # The stack pointer's alignment at a call, and how far below it a function may
    # touch memory without moving it (the x86-64 red zone).
    red_zone: int
    uname: tuple[str, ...]  # what os.uname().machine says on it

    def unpack_registers(self, data: bytes, endian: str = "<") -> dict[str, int]:
        """Registers by name from the kernel's user_regs_struct bytes."""
        n = min(len(self.registers), len(data) // 8)
        values = struct.unpack_from(f"{endian}{n}Q", data)
        return dict(zip(self.registers, values))

    @property
    def regs_size(self) -> int:
        return len(self.registers) * self.pointer_size


# arch/x86/include/uapi/asm/ptrace.h: struct user_regs_struct (also elf_gregset_t).
X86_64 = Arch(
    name="x86-64",
    machine=62,
    pointer_size=8,
    registers=(
        "r15",
        "r14",
        "r13",
        "r12",
        "rbp",
        "rbx",
        "r11",
        "r10",
        "r9",
        "r8",
        "rax",
        "rcx",
        "rdx",
        "rsi",
        "rdi",
        "orig_rax",
        "rip",
        "cs",
        "eflags",
        "rsp",
        "ss",
        "fs_base",
        "gs_base",
        "ds",
        "es",
        "fs",
        "gs",
    ),  # fmt: skip
    pc="rip",
    sp="rsp",
    link=None,
    capstone=("CS_ARCH_X86", "CS_MODE_64"),
    red_zone=128,
    uname=("x86_64",),
)

# arch/arm64/include/uapi/asm/ptrace.h: struct user_pt_regs.
AARCH64 = Arch(
    name="AArch64",
    machine=183,
    pointer_size=8,
    registers=(*(f"x{i}" for i in range(31)), "sp", "pc", "pstate"),
    pc="pc",
    sp="sp",
    link="x30",
    capstone=("CS_ARCH_ARM64", "CS_MODE_ARM"),
    red_zone=0,
    uname=("aarch64", "arm64"),
)

ARCHES = {a.machine: a for a in (X86_64, AARCH64)}


def arch_of_machine(machine: int) -> Arch | None:
    """The table for an ELF e_machine, or None for one procmap does not know."""
    return ARCHES.get(machine)


def host_arch() -> Arch | None:
    """The table for the machine procmap runs on, or None."""
    here = os.uname().machine
    return next((a for a in ARCHES.values() if here in a.uname), None)
