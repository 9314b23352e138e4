"""The pure parts of the crash explainer: siginfo, registers, instruction decoding."""

from __future__ import annotations

import struct

import pytest

from procmap.arch import AARCH64, X86_64, arch_of_machine, host_arch
from procmap.classify.instruction import decode
from procmap.kernel.signals import code_name, default_action, parse_siginfo, signal_name


def siginfo(signo: int, code: int, tail: bytes) -> bytes:
    return (struct.pack("<3ii", signo, 0, code, 0) + tail).ljust(128, b"\0")


def test_siginfo_of_a_fault_carries_the_address():
    info = parse_siginfo(siginfo(11, 1, struct.pack("<Q", 0xDEADBEEF000)))
    assert (info.name, info.code_name, info.addr, info.pid) == (
        "SIGSEGV",
        "SEGV_MAPERR",
        0xDEADBEEF000,
        None,
    )
    assert not info.sent


def test_siginfo_of_a_sent_signal_carries_the_sender():
    info = parse_siginfo(siginfo(6, -6, struct.pack("<iI", 4242, 1000)))
    assert (info.name, info.code_name, info.pid, info.uid, info.addr) == (
        "SIGABRT",
        "SI_TKILL",
        4242,
        1000,
        None,
    )
    assert info.sent


def test_siginfo_too_short():
    with pytest.raises(ValueError):
        parse_siginfo(b"\0" * 8)


@pytest.mark.parametrize(
    "signo, code, name",
    [(11, 2, "SEGV_ACCERR"), (7, 2, "BUS_ADRERR"), (8, 1, "FPE_INTDIV"), (4, 2, "ILL_ILLOPN"),
     (5, 1, "TRAP_BRKPT"), (11, 0x80, "SI_KERNEL"), (11, 99, "99"), (6, 0, "SI_USER")],
)  # fmt: skip
def test_code_names(signo, code, name):
    assert code_name(signo, code) == name


def test_signal_names_and_actions():
    assert signal_name(34) == "SIGRTMIN+0" and signal_name(99) == "signal 99"
    assert [default_action(s) for s in (11, 15, 17, 19)] == ["core", "term", "ignore", "stop"]


def test_registers_in_the_kernels_order():
    values = list(range(100, 100 + len(X86_64.registers)))
    regs = X86_64.unpack_registers(struct.pack(f"<{len(values)}Q", *values))
    assert regs["r15"] == 100 and regs["rip"] == 116 and regs["rsp"] == 119
    assert len(AARCH64.registers) == 34 and AARCH64.registers[31:] == ("sp", "pc", "pstate")
    assert arch_of_machine(62) is X86_64 and arch_of_machine(183) is AARCH64
    assert arch_of_machine(3) is None
    assert host_arch() is not None  # the test machines are x86-64 or AArch64


def x86(code: str, **regs: int):
    insn = decode(X86_64, bytes.fromhex(code), 0x1000, regs)
    assert insn is not None
    return insn


def test_x86_64_explicit_operands():
    store = x86("48c70000000000", rax=0x10)  # mov qword ptr [rax], 0
    assert [(a.kind, a.address, a.size) for a in store.accesses] == [("write", 0x10, 8)]
    load = x86("488b04c8", rax=0x1000, rcx=3)  # mov rax, [rax + rcx*8]
    assert [(a.kind, a.address) for a in load.accesses] == [("read", 0x1018)]
    partial = x86("8b4010", rax=0xFFFFFFFF00000020)  # mov eax, [rax + 0x10]
    assert partial.accesses[0].address == 0xFFFFFFFF00000030
    rip = x86("8b0500100000")  # mov eax, [rip + 0x1000]: from the next instruction
    assert rip.accesses[0].address == 0x1006 + 0x1000
    tls = x86("64488b042528000000", fs_base=0x7F0000000000)  # mov rax, fs:[0x28]
    assert tls.accesses[0].address == 0x7F0000000028


def test_x86_64_calls_and_the_stack():
    call = x86("ff10", rax=0x2000, rsp=0x8000)  # call qword ptr [rax]
    assert call.call
    assert [(a.kind, a.address, a.implicit) for a in call.accesses] == [
        ("read", 0x2000, False),
        ("write", 0x7FF8, True),
    ]
    direct = x86("ffd0", rax=0, rsp=0x8000)  # call rax: a jump to NULL
    assert ("execute", 0, True) in [(a.kind, a.address, a.implicit) for a in direct.accesses]
    push = x86("50", rsp=0x8000)
    assert [(a.kind, a.address) for a in push.accesses] == [("write", 0x7FF8)]
    ret = x86("c3", rsp=0x8000)
    assert ret.returns and [(a.kind, a.address) for a in ret.accesses] == [("read", 0x8000)]


def test_aarch64_is_designed_in():
    def a64(code: str, **regs: int):
        insn = decode(AARCH64, bytes.fromhex(code), 0x1000, regs)
        assert insn is not None
        return insn

    store = a64("010400f9", x0=0x5000)  # str x1, [x0, #8]
    assert [(a.kind, a.address) for a in store.accesses] == [("write", 0x5008)]
    load = a64("200040f9", x1=0x6000)  # ldr x0, [x1]
    assert [(a.kind, a.address) for a in load.accesses] == [("read", 0x6000)]
    ret = a64("c0035fd6", x30=0x4444)  # ret: to the link register
    assert ret.returns and ("execute", 0x4444) in [(a.kind, a.address) for a in ret.accesses]


def test_garbage_does_not_decode():
    assert decode(X86_64, b"", 0x1000, {}) is None
    assert decode(X86_64, bytes.fromhex("0f"), 0x1000, {}) is None
