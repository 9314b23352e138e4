"""Files procmap reads (ELF files, snapshots) and writes (snapshots, pictures).

Not /proc: kernel/procfs.py reads that.  Core: no click, no rich.
"""

from __future__ import annotations

import os
import secrets
import stat

from .errors import BadFile


def write_atomic(path: str | bytes | os.PathLike[str], data: bytes) -> None:
    """Write `data` to `path` atomically: all of it or, on failure, nothing.

    The bytes go to a new file in the same directory, which then replaces `path`
    (rename(2) is atomic within a file system), so a reader never sees half a
    file and a failed write leaves any earlier file at `path` untouched.
    """
    path = os.fsdecode(path)
    # Replace the file a symlink points to, not the symlink.
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        mode = os.stat(target).st_mode
    except OSError:
        mode = None  # missing (the usual case), or an error that creating it reports
    if mode is not None and not stat.S_ISREG(mode):
        # Never replace a device or a FIFO (--save /dev/null, run as root, would).
        raise BadFile(f"{path}: {file_type(mode)}, not a regular file: not replaced")
    directory, base = os.path.split(target)
    directory = directory or "."
    temp = os.path.join(directory, f".{base[:200]}.{secrets.token_hex(6)}.tmp")
    try:
        # Mode 0666 less the umask, as for any new file (mkstemp would give 0600).
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except OSError as err:
        raise BadFile(_cannot_write(path, directory, err)) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)  # the bytes on disk before the name points to them
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException as err:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(err, OSError):
            raise BadFile(_cannot_write(path, directory, err)) from None
        raise


def _cannot_write(path: str, directory: str, err: OSError) -> str:
    if isinstance(err, FileNotFoundError):
        if os.path.isdir(directory):  # /proc, /sys: a directory that takes no new files
            return f"{path}: cannot write: {directory} takes no new files"
        return f"{path}: cannot write: no such directory: {directory}"
    if isinstance(err, NotADirectoryError):
        return f"{path}: cannot write: {directory} is not a directory"
    if isinstance(err, PermissionError):
        return f"{path}: cannot write: permission denied (in {directory})"
    if isinstance(err, IsADirectoryError):
        return f"{path}: cannot write: a directory"
    return f"{path}: cannot write: {err.strerror or err}"


def file_type(mode: int) -> str:
    """What a file that is not a regular one is, in words ("a FIFO")."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | bytes) -> int:
    """Open a regular file for reading, refusing anything else before it can block.

    stat() first, so that a FIFO or a device is never opened (opening either can
    block or have side effects), then O_NONBLOCK and fstat() again against a
    swap between the two.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise BadFile(f"{shown_path(path)}: no such file") from None
    except NotADirectoryError:
        raise BadFile(f"{shown_path(path)}: no such file (a parent is not a directory)") from None
    except PermissionError:
        raise BadFile(f"{shown_path(path)}: permission denied") from None
    except OSError as err:  # a symlink loop, a name too long...
        raise BadFile(f"{shown_path(path)}: {err.strerror}") from None
    except ValueError:
        raise BadFile(f"{shown_path(path)!r}: a path cannot hold a NUL byte") from None
    _require_regular(path, st.st_mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except PermissionError:
        raise BadFile(f"{shown_path(path)}: permission denied") from None
    except OSError as err:
        raise BadFile(f"{shown_path(path)}: {err.strerror}") from None
    try:
        _require_regular(path, os.fstat(fd).st_mode)
    except BadFile:
        os.close(fd)
        raise
    return fd


def _require_regular(path: str | bytes, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise BadFile(f"{shown_path(path)}: {file_type(mode)}, not a regular file")


def shown_path(path: str | bytes) -> str:
    return os.fsdecode(path) if isinstance(path, bytes) else path
