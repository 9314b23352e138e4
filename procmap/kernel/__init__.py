"""The only code that touches the kernel: /proc (procfs.py), its texts' parsers
(maps.py, smaps.py: pure, the hot path) and ptrace (ptrace.py)."""
