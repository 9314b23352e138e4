"""The only code that opens anything under /proc; every OSError becomes a procmap error here.

A process is read through a file descriptor of its /proc/PID directory, held
open for the whole read: once the process exits, every read through it fails
with ESRCH, even if the PID has been given to a new process meanwhile, so
procmap can never mix two processes in one map.

The procfs root is a parameter (as psutil's PROCFS_PATH), so the same code can
read a /proc mounted elsewhere.
"""

from __future__ import annotations

import os
import pwd
import stat
import struct
import sys
from typing import NamedTuple

from ..errors import AccessDenied, AmbiguousProcess, NoSuchProcess, ProcessExited
from ..model import DEFAULT_GUARD_GAP_PAGES, Mapping

PF_KTHREAD = 0x00200000  # include/linux/sched.h: this task is a kernel thread


class TaskStat(NamedTuple):
    """The fields of /proc/PID/stat that procmap uses (proc(5))."""

    pid: int
    comm: str
    state: str  # R, S, D, Z, T...
    ppid: int
    flags: int
    start_time: int  # clock ticks after boot: with the PID, a process's identity
    # Addresses the kernel sets at exec: code, stack, data, brk start, arguments,
    # environment.  A new exec gives new ones, even of the same program file
    # (its arguments move, with ASLR everything does).  Zeros when the reader
    # may not look at the process's memory.
    exec_marks: tuple[int, ...] = ()

    @property
    def is_kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD)

    @property
    def is_zombie(self) -> bool:
        return self.state in ("Z", "X")


def parse_stat(data: bytes) -> TaskStat:
    # comm is in parentheses and may itself hold spaces and ')': split at the last ')'.
    head, _, rest = data.rpartition(b")")
    pid, _, comm = head.partition(b" (")
    fields = rest.split()
    return TaskStat(
        pid=int(pid),
        comm=comm.decode("utf-8", "surrogateescape"),
        state=fields[0].decode("ascii"),
        ppid=int(fields[1]),
        flags=int(fields[6]),
        start_time=int(fields[19]),
        exec_marks=tuple(map(int, fields[23:26] + fields[42:49])),
    )


def parse_status(data: bytes) -> dict[str, str]:
    # Decoded once, not line by line: twice as fast (procmap system reads every
    # process's).  The keys are ASCII; a name's bytes that are not UTF-8 are kept.
    out = {}
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def effective_uid(status: dict[str, str]) -> int:
    """The effective UID from parse_status(): "Uid:" holds real, effective, saved, fs."""
    uids = status.get("Uid", "0 0").split()
    return int(uids[1] if len(uids) > 1 else uids[0])


def parse_auxv(data: bytes, pointer_size: int, endian: str = "little") -> dict[int, int]:
    """The auxiliary vector (getauxval(3)): a_type -> a_val, up to AT_NULL; the first
    of a repeated type (the kernel writes each once)."""
    word = {4: "I", 8: "Q"}[pointer_size]
    entry = struct.Struct(("<" if endian == "little" else ">") + word * 2)
    out: dict[int, int] = {}
    usable = len(data) - len(data) % entry.size
    for a_type, a_val in entry.iter_unpack(data[:usable]):
        if a_type == 0:  # AT_NULL
            break
        out.setdefault(a_type, a_val)
    return out


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class ProcFS:
    """A procfs mount: /proc unless told otherwise."""

    def __init__(self, root: str = "/proc"):
        self.root = root

    def open(self, pid: int) -> ProcessDir:
        """Open /proc/PID and hold it; raises NoSuchProcess or AccessDenied."""
        path = f"{self.root}/{pid}"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            raise NoSuchProcess(f"no process with PID {pid}{self.hidden_hint()}") from None
        except PermissionError:
            raise AccessDenied(f"PID {pid}: permission denied reading {path}") from None
        return ProcessDir(self, pid, fd)

    def pids(self) -> list[int]:
        return sorted(int(name) for name in os.listdir(self.root) if name.isdigit())

    def stat_of(self, pid: int) -> TaskStat | None:
        """/proc/PID/stat of whichever process has the PID now (None if none does).

        Read by path, not through a held descriptor: this is how to tell that a
        PID was given to another process (its start time differs).
        """
        try:
            with open(f"{self.root}/{pid}/stat", "rb") as f:
                return parse_stat(f.read())
        except (OSError, ValueError, IndexError):
            return None

    def find(self, name: str, exclude: int | None = None) -> int:
        """The PID of the one process called `name`: its name (comm), the file name
        of its executable, or the file name of its argv[0].

        Raises NoSuchProcess when none is, AmbiguousProcess (with a line for each)
        when several are.  Processes this user may not look at are skipped.
        """
        matches: list[tuple[int, str, str]] = []  # (pid, user, command line)
        for pid in self.pids():
            if pid == exclude:
                continue
            try:
                with self.open(pid) as pd:
                    comm = pd.stat().comm
                    names = {comm}
                    exe = pd.exe_path()
                    if exe:
                        names.add(os.path.basename(exe))
                    argv = pd.cmdline()
                    if argv:
                        names.add(os.path.basename(argv[0]))
                    if name not in names:
                        continue
                    uids = pd.status().get("Uid", "").split()
                    user = user_name(int(uids[1])) if len(uids) > 1 else "?"
                    matches.append((pid, user, " ".join(argv) or comm))
            except (NoSuchProcess, AccessDenied, ProcessExited):
                continue
        if not matches:
            raise NoSuchProcess(f"no process named {name!r}")
        if len(matches) > 1:
            candidates = [f"{pid:>8}  {user:<12} {line[:100]}" for pid, user, line in matches]
            raise AmbiguousProcess(
                f"{len(matches)} processes are named {name!r}; give one of their PIDs:", candidates
            )
        return matches[0][0]

    def stack_guard_gap(self, page_size: int) -> int | None:
        """The kernel's stack_guard_gap in bytes, from its command line
        (stack_guard_gap=PAGES; mm/mmap.c: 256 pages unless set); None if unreadable."""
        try:
            with open(f"{self.root}/cmdline", "rb") as f:
                words = f.read().split()
        except OSError:
            return None
        pages = DEFAULT_GUARD_GAP_PAGES
        for word in words:
            if word == b"--":
                break  # what follows is init's arguments, not the kernel's
            if word.startswith(b"stack_guard_gap="):
                value = word[16:]
                if value.isdigit():
                    pages = int(value)  # the last one given wins, as the kernel parses it
        return pages * page_size

    def hidepid(self) -> str | None:
        """The hidepid= option of this procfs mount, if any (proc(5))."""
        try:
            with open(f"{self.root}/self/mountinfo", "rb") as f:
                data = f.read()
        except OSError:
            return None
        for line in data.split(b"\n"):
            fields = line.split()
            if len(fields) > 4 and fields[4] == self.root.encode():
                for option in line.split(b" - ", 1)[-1].split()[-1].split(b","):
                    if option.startswith(b"hidepid="):
                        value = option[8:].decode()
                        return None if value in ("0", "off") else value
        return None

    def hidden_hint(self) -> str:
        hidepid = self.hidepid()
        if hidepid in ("2", "invisible"):
            return f" (or it is hidden: {self.root} is mounted with hidepid={hidepid})"
        return ""


class ProcessDir:
    """One process's /proc/PID, held open by a file descriptor."""

    def __init__(self, procfs: ProcFS, pid: int, fd: int):
        self.procfs = procfs
        self.pid = pid
        self.fd = fd
        self.path = f"{procfs.root}/{pid}"
        self._map_files = os.geteuid() == 0  # following map_files links needs CAP_SYS_ADMIN
        self._fs_types: dict[str, str] | None = None  # by device, from mountinfo

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ProcessDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading, with errors mapped ------------------------------------------------

    def read(self, name: str) -> bytes:
        """The whole of /proc/PID/<name>."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as err:
            raise self.error(err, name) from None
        try:
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError as err:
            raise self.error(err, name) from None
        finally:
            os.close(fd)

    def error(self, err: OSError, name: str) -> Exception:
        if isinstance(err, (ProcessLookupError, FileNotFoundError)):
            return ProcessExited(f"PID {self.pid} exited while procmap was reading it")
        if isinstance(err, PermissionError):
            return AccessDenied(self.explain_denied(name))
        return err

    def explain_denied(self, name: str) -> str:
        """Why reading /proc/PID/<name> was refused, and what to do about it."""
        what = f"permission denied reading {self.path}/{name}"
        try:
            status = parse_status(self.read("status"))
            # proc(5): a non-dumpable process's /proc/PID files belong to root.
            file_uid = os.stat(name, dir_fd=self.fd).st_uid
        except (AccessDenied, OSError):
            hidepid = self.procfs.hidepid()
            if hidepid:
                return (
                    f"{what}: {self.procfs.root} is mounted with hidepid={hidepid}, which hides "
                    "other users' processes; run procmap as the process's user, or with sudo"
                )
            return f"{what}; run procmap as the process's user, or with sudo"
        except ProcessExited:
            raise
        uids = [int(u) for u in status.get("Uid", "").split()]
        me = os.geteuid()
        owner = uids[1] if len(uids) > 1 else file_uid
        if uids and any(u != me for u in uids[:3]):
            if all(u == uids[0] for u in uids[:3]):
                who = f"belongs to user {user_name(owner)}"
            else:
                who = "runs with another user's privileges (set-user-ID or set-group-ID)"
            return (
                f"{what}: PID {self.pid} ({status.get('Name', '?')}) {who}; "
                f"run procmap as {user_name(owner)}, or with sudo"
            )
        if file_uid != me and owner == me:
            return (
                f"{what}: PID {self.pid} ({status.get('Name', '?')}) is not dumpable "
                "(prctl(PR_SET_DUMPABLE, 0), or it changed credentials), so only root "
                "may read its memory map; run procmap with sudo"
            )
        if me == 0:
            return (
                f"{what}: refused even to root by the kernel's ptrace access check (a security "
                "module such as SELinux, AppArmor or Yama ptrace_scope=3, missing CAP_SYS_PTRACE, "
                "or a process owned by another user namespace)"
            )
        return (
            f"{what}: the kernel's ptrace access check refused it (a security module, or "
            "missing capabilities); run procmap with sudo"
        )

    # --- what procmap reads ---------------------------------------------------------

    def stat(self) -> TaskStat:
        return parse_stat(self.read("stat"))

    def status(self) -> dict[str, str]:
        return parse_status(self.read("status"))

    def maps(self) -> bytes:
        return self.read("maps")

    def read_into(self, name: str, buffer: bytearray) -> bytes:
        """The whole of /proc/PID/<name>, read through `buffer` (grown as needed, kept
        for the next call): a watch reads maps many times a second, and a reused
        buffer saves an allocation per read() call."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as err:
            raise self.error(err, name) from None
        try:
            pos = 0
            view = memoryview(buffer)
            while True:
                if pos == len(buffer):
                    view.release()
                    buffer.extend(bytes(len(buffer) or 1 << 16))  # double it
                    view = memoryview(buffer)
                got = os.readv(fd, [view[pos:]])
                if not got:
                    break
                pos += got
            data = bytes(view[:pos])
            view.release()
            return data
        except OSError as err:
            raise self.error(err, name) from None
        finally:
            os.close(fd)

    def owner(self) -> int:
        """The owner of /proc/PID: the process's effective UID (root's, for a process
        that is not dumpable, proc(5)); for when its status may not be read."""
        try:
            return os.fstat(self.fd).st_uid
        except OSError as err:
            raise self.error(err, ".") from None

    def task_links(self) -> int:
        """The link count of /proc/PID/task: 2 + the number of threads
        (proc_task_getattr), so one stat() tells whether threads came or went."""
        try:
            return os.stat("task", dir_fd=self.fd).st_nlink
        except OSError as err:
            raise self.error(err, "task") from None

    def exe_path(self) -> str | None:
        """Where /proc/PID/exe points, or None (a kernel thread, or not allowed)."""
        try:
            return os.readlink("exe", dir_fd=self.fd)
        except OSError:
            return None

    def smaps(self) -> bytes:
        return self.read("smaps")

    def smaps_rollup(self) -> bytes | None:
        """/proc/PID/smaps_rollup (Linux 4.14+); None on an older kernel, which has none.

        Empty while the process exits, as smaps is.
        """
        try:
            return self.read("smaps_rollup")
        except ProcessExited:
            self.stat()  # still alive (else this raises): the file is missing, not the process
            return None

    def pagemap(self, start: int, end: int, page_size: int) -> bytes | None:
        """The pagemap entries (8 bytes a page) of [start, end); None if not readable."""
        return self.pagemaps([(start, end)], page_size)[0]

    def pagemaps(self, ranges: list[tuple[int, int]], page_size: int) -> list[bytes | None]:
        """pagemap() of each [start, end) in `ranges`, through one open of the file."""
        try:
            fd = os.open("pagemap", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return [None] * len(ranges)
        out: list[bytes | None] = []
        try:
            for start, end in ranges:
                want = (end - start) // page_size * 8
                try:
                    data = os.pread(fd, want, start // page_size * 8)
                except OSError:
                    data = b""
                out.append(data if len(data) == want else None)
            return out
        finally:
            os.close(fd)

    def auxv(self) -> bytes | None:
        """/proc/PID/auxv: the auxiliary vector as the kernel wrote it at exec (its own
        copy, mm->saved_auxv: what the program changes on its stack is not here).
        None when not readable: proc(5) makes it mode 0400, its owner's.
        """
        try:
            return self.read("auxv")
        except AccessDenied:
            return None

    def memory(self, address: int, size: int) -> bytes | None:
        """`size` bytes of the process's memory at `address`, through /proc/PID/mem.

        None when refused (it needs ptrace attach permission,
        PTRACE_MODE_ATTACH_FSCREDS, and the file is mode 0600), when not all of
        it is mapped, or when the process is gone.
        """
        try:
            fd = os.open("mem", os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError:
            return None
        try:
            data = os.pread(fd, size, address)
            return data if len(data) == size else None
        except (OSError, OverflowError):
            return None
        finally:
            os.close(fd)

    def cmdline(self) -> list[str]:
        try:
            data = self.read("cmdline")
        except AccessDenied:
            return []
        return [a.decode("utf-8", "surrogateescape") for a in data.split(b"\0") if a]

    def task_ids(self) -> list[int]:
        try:
            fd = os.open("task", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as err:
            raise self.error(err, "task") from None
        try:
            return sorted(int(n) for n in os.listdir(fd) if n.isdigit())
        finally:
            os.close(fd)

    def thread_stack_pointer(self, tid: int) -> int | None:
        """The stack pointer of thread `tid`, from /proc/PID/task/TID/syscall.

        proc(5): "nr args... sp pc" when blocked in a system call, "-1 sp pc"
        when blocked outside one, "running" when on a CPU (no registers then).
        Reading it needs ptrace attach permission (PTRACE_MODE_ATTACH_FSCREDS),
        stricter than the maps file: None when refused or running.
        Raises PermissionError for the caller to count.
        """
        sp, why = self.thread_sp(tid)
        if why == "denied":
            raise PermissionError
        return sp

    def thread_sp(self, tid: int) -> tuple[int | None, str | None]:
        """(stack pointer, None), or (None, why not): a model.SP_UNKNOWN key, or "gone"
        for a thread that ended (the process may go on)."""
        try:
            data = self.read(f"task/{tid}/syscall")
        except ProcessExited:
            return None, "gone"
        except AccessDenied:
            return None, "denied"
        fields = data.split()
        if fields[:1] == [b"running"]:
            return None, "running"
        if len(fields) < 3:
            return None, "unreadable"
        try:
            return int(fields[-2], 16), None
        except ValueError:
            return None, "unreadable"

    def task_stat(self, tid: int) -> TaskStat | None:
        """/proc/PID/task/TID/stat: the thread's name (comm, unescaped: the comm file
        escapes "\\n" and backslashes) and state in one read; None for a thread that
        ended meanwhile (whether the whole process did is the caller's to check)."""
        try:
            return parse_stat(self.read(f"task/{tid}/stat"))
        except ProcessExited:
            return None

    def stack_limit(self) -> int | None:
        """The soft RLIMIT_STACK, which glibc takes as the default thread stack size."""
        try:
            data = self.read("limits")
        except (AccessDenied, ProcessExited):
            return None
        for line in data.split(b"\n"):
            if line.startswith(b"Max stack size"):
                soft = line[len(b"Max stack size") :].split()[0]
                return int(soft) if soft.isdigit() else None
        return None

    def file_key(self, name: str) -> tuple[str, int] | None:
        """(dev, inode), as maps shows them, of the file that /proc/PID/<name> links to."""
        try:
            st = os.stat(name, dir_fd=self.fd)
        except OSError:
            return None
        return dev_string(st.st_dev), st.st_ino

    def root_file_key(self, path: str) -> tuple[str, int] | None:
        """(dev, inode) of `path` as the process sees it (its root, its mounts)."""
        return self.file_key("root" + path) if path.startswith("/") else None

    def open_mapped_file(self, m: Mapping, is_exe: bool) -> tuple[int | None, str]:
        """Open the file behind mapping `m`: (fd, where it was found), or (None, why not).

        Tried in order: /proc/PID/map_files/START-END (the very file mapped, even
        deleted or replaced; root only), /proc/PID/exe for the program, then the
        path as the process sees it, through /proc/PID/root (its root and its
        mount namespace).  A file is accepted only if its device and inode are
        the ones maps shows: a file replaced on disk after it was mapped, or
        another file at the same path in another mount namespace, is never read
        in its place.
        """
        candidates = []
        if self._map_files:
            candidates.append(f"map_files/{m.start:x}-{m.end:x}")
        if is_exe:
            candidates.append("exe")
        deleted = False
        if m.path and m.path.startswith("/"):
            path = m.path
            if path.endswith(" (deleted)"):
                deleted = True
                path = path[:-10]
                candidates.append("root" + m.path)  # a file really named "... (deleted)"
            candidates.append("root" + path)
            if "\\012" in path:
                candidates.append("root" + path.replace("\\012", "\n"))
        denied = replaced = False
        for name in candidates:
            try:
                st = os.stat(name, dir_fd=self.fd)
            except PermissionError:
                if name.startswith("map_files/"):
                    self._map_files = False
                else:
                    denied = True
                continue
            except (OSError, ValueError):
                continue
            if not self.same_file(st, m) or not stat.S_ISREG(st.st_mode):
                replaced = replaced or name.startswith("root/")
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
            except PermissionError:
                denied = True
                continue
            except OSError:
                continue
            if self.same_file(os.fstat(fd), m):
                return fd, f"{self.path}/{name}"
            os.close(fd)
        if denied:
            return None, "not readable by this user"
        if replaced and not deleted:
            return None, "another file is at its path now, as the process sees it"
        if deleted:
            return None, "deleted; only root can read it, through map_files"
        return None, "not found at its path, as the process sees it"

    def same_file(self, st: os.stat_result, m: Mapping) -> bool:
        """Whether stat() result `st` is the file that mapping `m` maps: device and inode.

        Two filesystems give stat() another device than maps shows for the same
        file: btrfs (a subvolume's device; maps shows the filesystem's) and, before
        Linux 6.8, overlayfs (maps showed the layer's device under it).  Only there
        is the inode alone enough; their type is read from the process's mountinfo.
        """
        if st.st_ino != m.inode:
            return False
        dev = dev_string(st.st_dev)
        if dev == m.dev:
            return True
        return self.fs_type(m.dev) == "btrfs" or self.fs_type(dev) == "overlay"

    def fs_type(self, dev: str) -> str | None:
        """The type of the filesystem mounted from device `dev` ("fe:00"), as the process
        sees its mounts (/proc/PID/mountinfo), or None."""
        if self._fs_types is None:
            self._fs_types = {}
            try:
                data = self.read("mountinfo")
            except (AccessDenied, ProcessExited, OSError):
                data = b""
            for line in data.split(b"\n"):
                fields = line.split(b" ", 4)
                _, sep, after = line.partition(b" - ")
                if len(fields) < 5 or not sep or b":" not in fields[2]:
                    continue
                major, _, minor = fields[2].partition(b":")
                if major.isdigit() and minor.isdigit():
                    key = f"{int(major):02x}:{int(minor):02x}"
                    self._fs_types.setdefault(
                        key, after.split(b" ", 1)[0].decode("ascii", "replace")
                    )
        return self._fs_types.get(dev)


def dev_string(st_dev: int) -> str:
    """A device number as /proc/PID/maps prints it: "%02x:%02x"."""
    return f"{os.major(st_dev):02x}:{os.minor(st_dev):02x}"


def zero_page_frame() -> int | None:
    """The frame number of the kernel's zero page, or None when frames are hidden.

    pagemap gives frame numbers only to a reader with CAP_SYS_ADMIN (checked
    when the file is opened); to others they read as zero.  A private
    anonymous page that was read but never written maps the one zero page,
    which smaps does not count as resident: procmap's own such page says
    which frame that is.
    """
    import ctypes
    import mmap

    size = mmap.PAGESIZE
    try:
        area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except OSError:
        return None
    try:
        cell = ctypes.c_char.from_buffer(area)
        address = ctypes.addressof(cell)
        _ = cell.value  # a read fault: the zero page is mapped here
        del cell
        fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        try:
            entry = int.from_bytes(os.pread(fd, 8, address // size * 8), sys.byteorder)
        finally:
            os.close(fd)
    except OSError:
        return None
    finally:
        area.close()
    frame = entry & ((1 << 55) - 1)
    return frame if entry >> 63 and frame else None


def mmap_min_addr(path: str = "/proc/sys/vm/mmap_min_addr") -> int:
    """The lowest address a process may map (vm.mmap_min_addr); 65536, the usual
    default, when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 65536
