"""A process made of many small mappings, for measuring and watching procmap.

    python samples/pages.py N            map N pages, alternating read-only and
                                         read-write so that none merge
    python samples/pages.py N --churn    the same, then flip the middle page
                                         every millisecond until killed

It prints "ready" once mapped.  Without --churn, each byte read on stdin flips
the middle page (read-write, between two read-only ones) to read-only, merging
the three into one mapping, or back, splitting them again, and answers "k"
once the change is made; end of stdin ends it.  Nothing else changes its map:
the loop allocates nothing (the mprotect arguments are made once).
"""

import ctypes
import mmap
import os
import sys
import time

n = int(sys.argv[1])
libc = ctypes.CDLL(None, use_errno=True)
page = mmap.PAGESIZE
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
base = libc.mmap(None, n * page, 3, 0x22, -1, 0)  # PROT_READ|WRITE, MAP_PRIVATE|ANONYMOUS
for i in range(0, n, 2):
    libc.mprotect(base + i * page, page, 1)
mid = ctypes.c_void_p(base + (n // 2 | 1) * page)
size, ro, rw = ctypes.c_size_t(page), ctypes.c_int(1), ctypes.c_int(3)
os.write(1, b"ready\n")
state = 0
if sys.argv[2:] == ["--churn"]:
    while True:
        state ^= 1
        libc.mprotect(mid, size, ro if state else rw)
        time.sleep(0.001)
while os.read(0, 1):
    state ^= 1
    if libc.mprotect(mid, size, ro if state else rw):
        os._exit(1)
    os.write(1, b"k")
