"""Files procmap reads (ELF files, snapshots) and writes (snapshots, pictures).

Not /proc: kernel/procfs.py reads that.  Core: no click, no rich.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import NoReturn

from .errors import BadFile


def write_atomic(
    path: str | bytes | os.PathLike[str],
    data: bytes,
    *,
    private: bool = False,
    ours: Callable[[bytes], bool] | None = None,
    what: str = "file",
    force: bool = False,
) -> str:
    """Write `data` to `path` atomically: all of it or, on failure, nothing.

    The bytes go to a new file in the same directory, which then replaces `path`
    (rename(2) is atomic within a file system), so a reader never sees half a
    file and a failed write leaves any earlier file at `path` untouched.

    Never widens access: a replaced file keeps its mode, and its owner and group
    where the writer may set them; a new file is created with mode 0666 less the
    umask, or 0600 with `private`.  A symbolic link is followed, and the file it
    points to replaced; a link loop, or a link to nothing, is refused.  With
    `ours`, a test of an existing file's first bytes, a non-empty file that is
    not `what` (a procmap snapshot) is not replaced unless `force`.

    Returns the path really written (the link's target, for a link).
    """
    path = os.fsdecode(path)
    target = _link_target(path, what, force) if os.path.islink(path) else path
    try:
        st: os.stat_result | None = os.stat(target)
    except OSError:
        st = None  # missing (the usual case), or an error that creating it reports
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            # Never replace a device or a FIFO (--save /dev/null, run as root, would).
            raise BadFile(
                f"{_named(path, target)}: {file_type(st.st_mode)}, not a regular file: not replaced"
            )
        if ours is not None and not force and not _is_ours(target, ours):
            raise BadFile(
                f"{_named(path, target)}: exists and is not a {what}: not replaced "
                f"(--force replaces it)"
            )
    directory, base = os.path.split(target)
    directory = directory or "."
    import secrets  # here: it imports hashlib and random (4 ms), and only writes need it

    temp = os.path.join(directory, f".{base[:200]}.{secrets.token_hex(6)}.tmp")
    # A new file: 0666 or 0600 less the umask.  A replaced one: 0600 until it
    # has the old file's owner and mode, so no one can open it in between.
    mode = 0o600 if private or st is not None else 0o666
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as err:
        raise BadFile(_cannot_write(path, directory, err)) from None
    try:
        try:
            if st is not None:
                _keep_owner_and_mode(fd, st)
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
    return target


def _link_target(path: str, what: str, force: bool) -> str:
    """The file a symbolic link leads to; BadFile for a loop, or a link to nothing."""
    try:
        return os.path.realpath(path, strict=True)
    except FileNotFoundError:
        if force:
            return os.path.realpath(path)
        return _refuse_link(path, "which does not exist: not written (--force writes it)")
    except OSError as err:  # ELOOP, and realpath's own loop detection
        return _refuse_link(
            path, f"which cannot be followed ({(err.strerror or 'a loop').lower()})"
        )


def _refuse_link(path: str, why: str) -> NoReturn:
    try:
        points_to = os.readlink(path)
    except OSError:
        points_to = "?"
    raise BadFile(f"{path}: a symbolic link to {points_to}, {why}")


def _named(path: str, target: str) -> str:
    """`path`, and where it leads when that is another file."""
    return path if target == path else f"{path} (a symbolic link to {target})"


def _is_ours(target: str, ours: Callable[[bytes], bool]) -> bool:
    try:
        fd = open_regular(target)
    except BadFile:
        return False  # unreadable: not known to be ours
    try:
        head = os.read(fd, 4096)
    except OSError:
        return False
    finally:
        os.close(fd)
    return not head or ours(head)  # an empty file (mktemp's) holds nothing to lose


def _keep_owner_and_mode(fd: int, st: os.stat_result) -> None:
    try:
        os.fchown(fd, st.st_uid, st.st_gid)  # before fchmod: chown clears set-id bits
    except PermissionError:
        pass  # another user's file: owned by the writer, as any file it writes
    os.fchmod(fd, stat.S_IMODE(st.st_mode))


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
