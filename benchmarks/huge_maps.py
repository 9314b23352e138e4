"""A maps text with N separate mappings, for measuring procmap on huge maps.

    .venv/bin/python benchmarks/huge_maps.py N FILE [--apart]

A small dynamically linked program (its image, a heap, libc, the dynamic
linker, the vdso and a stack) with N one-page anonymous mappings in its
mapping area that alternate read-only and read-write, so the kernel could not
merge them, as `samples/pages.py N` makes them in a live process; with
--apart, each is also one page away from the next, so that every one is a
band of its own in the picture.  No process holds 300,000 mappings under the
default vm.max_map_count (65,530): a text is how procmap meets one, through
`--from FILE`.
"""

from __future__ import annotations

import sys
from pathlib import Path

PAGE = 0x1000
_HEAD = """\
55d0c8a00000-55d0c8a01000 r--p 00000000 fe:00 100                        /usr/bin/huge
55d0c8a01000-55d0c8a02000 r-xp 00001000 fe:00 100                        /usr/bin/huge
55d0c8a02000-55d0c8a03000 r--p 00002000 fe:00 100                        /usr/bin/huge
55d0c8a03000-55d0c8a04000 r--p 00002000 fe:00 100                        /usr/bin/huge
55d0c8a04000-55d0c8a05000 rw-p 00003000 fe:00 100                        /usr/bin/huge
55d0ca000000-55d0ca021000 rw-p 00000000 00:00 0                          [heap]
"""
_TAIL = """\
7fe1a9015000-7fe1a903b000 r--p 00000000 fe:00 200                        /usr/lib/x86_64-linux-gnu/libc.so.6
7fe1a903b000-7fe1a9191000 r-xp 00026000 fe:00 200                        /usr/lib/x86_64-linux-gnu/libc.so.6
7fe1a9191000-7fe1a91e4000 r--p 0017c000 fe:00 200                        /usr/lib/x86_64-linux-gnu/libc.so.6
7fe1a91e4000-7fe1a91e8000 r--p 001cf000 fe:00 200                        /usr/lib/x86_64-linux-gnu/libc.so.6
7fe1a91e8000-7fe1a91ea000 rw-p 001d3000 fe:00 200                        /usr/lib/x86_64-linux-gnu/libc.so.6
7fe1a91ea000-7fe1a91f7000 rw-p 00000000 00:00 0
7fe1a9235000-7fe1a9239000 r--p 00000000 00:00 0                          [vvar]
7fe1a923b000-7fe1a923d000 r-xp 00000000 00:00 0                          [vdso]
7fe1a923d000-7fe1a923e000 r--p 00000000 fe:00 300                        /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7fe1a923e000-7fe1a9264000 r-xp 00001000 fe:00 300                        /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7fe1a9264000-7fe1a926e000 r--p 00027000 fe:00 300                        /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7fe1a926e000-7fe1a9270000 r--p 00031000 fe:00 300                        /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7fe1a9270000-7fe1a9272000 rw-p 00033000 fe:00 300                        /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
7ffff10ea000-7ffff110b000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
"""
_TOP = 0x7FE1A9015000  # where libc starts: the N mappings end below it


def huge_maps(n: int, apart: bool = False) -> str:
    """The maps text: the program, then N mappings below libc, then the rest."""
    step = 2 * PAGE if apart else PAGE
    at = _TOP - n * step - PAGE
    lines = []
    for i in range(n):
        perms = "r--p" if i % 2 else "rw-p"
        lines.append(f"{at:x}-{at + PAGE:x} {perms} 00000000 00:00 0 \n")
        at += step
    return _HEAD + "".join(lines) + _TAIL


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--apart"]
    if len(args) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    Path(args[1]).write_text(huge_maps(int(args[0]), "--apart" in sys.argv))


if __name__ == "__main__":
    main()
