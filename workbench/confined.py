"""Confined file access: the one way the host touches a path inside a folder sandboxed code controls.

Code in the sandbox owns every name and byte of the workspace, and a project folder someone sent you is
theirs down to its notes. So the host side never resolves such a path as a whole. A `Confined` folder is
opened once as a directory fd; every path below it is walked one component at a time with `openat` and
`O_NOFOLLOW | O_DIRECTORY`, so a symlink anywhere on the way is refused, and a folder swapped for a symlink
between two steps (a rename race) is refused too, since each step holds the directory it came from.

  * Only regular files are opened, with `O_NONBLOCK | O_NOCTTY`: a FIFO, socket or device is reported as
    what it is and never opened, so nothing can hang the host or touch a device.
  * Every read is bounded (`read`: the cap is the caller's and the result says when it was reached).
  * Writes go to a temporary file this module creates with `O_EXCL | O_NOFOLLOW` in a directory it holds
    open, then `renameat` over the name: a planted `.NAME.wb-tmp` symlink is never written through.
  * Ownership changes use `fchownat(..., AT_SYMLINK_NOFOLLOW)` on entries of fd-held directories.
  * A symlink is an entry of kind "symlink" with its target string (read with `readlinkat`), never followed.

Errors are `Refused` (a `WorkbenchError`): one line saying what the path is and that it was not followed or
not opened, e.g. "x is a symlink to /etc/shadow: not followed".

Long because every host-side operation on a sandbox-owned folder lives on `Confined`, so that one file is
where the fd-held, no-follow discipline is reviewed, and no caller reaches a path any other way.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workbench.errors import WorkbenchError
from workbench.inert import one_line

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
HASH_BLOCK = 1 << 20


class Refused(WorkbenchError):
    """A path that is not what the caller may open (a symlink, a special file, outside the folder)."""

    exit_code = 1


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"


KIND_WORDS = {"symlink": "a symlink", "fifo": "a FIFO", "socket": "a socket", "device": "a device",
              "dir": "a folder", "other": "a special file", "file": "a file"}


@dataclass(frozen=True)
class Entry:
    """One name in a confined folder, as `lstat` saw it (never followed)."""

    path: str  # relative to the folder, "/"-separated
    kind: str  # file, dir, symlink, fifo, socket, device, other
    size: int
    mtime_ns: int
    ctime_ns: int  # the kernel sets it on every change; code cannot set it back (no CAP_SYS_TIME)
    inode: int
    device: int
    uid: int
    gid: int
    target: str | None = None  # a symlink's target string

    @property
    def signature(self) -> tuple[int, int, int, int, int, str | None]:
        """What changes whenever the file's content or identity changes (content rewritten in place at the
        same size with its mtime restored still moves ctime; a file replaced by another moves the inode)."""
        return (self.size, self.mtime_ns, self.ctime_ns, self.inode, self.device, self.target)

    def describe(self) -> str:
        """`x is a symlink to /etc/shadow`, `p is a FIFO`: for notes and observations (inert)."""
        what = KIND_WORDS.get(self.kind, self.kind)
        if self.kind == "symlink":
            return f"{one_line(self.path)} is a symlink to {one_line(self.target or '?')}"
        return f"{one_line(self.path)} is {what}"


@dataclass(frozen=True)
class Read:
    data: bytes
    size: int  # the file's size when opened
    truncated: bool  # the cap was reached before the end


def split(path: str | PurePosixPath) -> tuple[str, ...]:
    """The components of a relative path; absolute paths, `..`, NUL and empty paths are refused."""
    text = str(path)
    if "\0" in text:
        raise Refused(f"{one_line(text)}: a path may not hold a NUL byte")
    parts = tuple(p for p in text.split("/") if p not in ("", "."))
    if text.startswith("/"):
        raise Refused(f"{one_line(text)}: an absolute path is outside the folder")
    if ".." in parts:
        raise Refused(f"{one_line(text)}: '..' leaves the folder")
    return parts


def _entry(rel: str, st: os.stat_result, target: str | None = None) -> Entry:
    return Entry(rel, kind_of(st.st_mode), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev,
                 st.st_uid, st.st_gid, target)


class Confined:
    """A folder opened once; every operation below it is relative to its directory fd."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        try:
            self.fd = os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            if os.path.islink(self.root):
                raise Refused(f"{one_line(self.root)} is a symlink: not followed") from exc
            raise Refused(f"cannot open {one_line(self.root)}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Confined:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- walking down, one component at a time ------------------------------------------------------
    def _open_dir(self, parts: tuple[str, ...], *, create: bool = False) -> int:
        """A new fd of the folder at `parts` (the caller closes it)."""
        fd = os.dup(self.fd)
        walked: list[str] = []
        try:
            for part in parts:
                walked.append(part)
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    entry = self.lstat_at(fd, part, "/".join(walked))
                    if entry is not None and entry.kind != "dir":
                        raise Refused(f"{entry.describe()}: not followed") from exc
                    raise
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def lstat_at(dir_fd: int, name: str, rel: str) -> Entry | None:
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError:
            return None
        target = None
        if stat.S_ISLNK(st.st_mode):
            try:
                target = os.readlink(name, dir_fd=dir_fd)
            except OSError:
                target = "?"
        return _entry(rel, st, target)

    def _parent(self, path: str, *, create: bool = False) -> tuple[int, str, str]:
        parts = split(path)
        if not parts:
            raise Refused("an empty path names the folder itself, not a file in it")
        return self._open_dir(parts[:-1], create=create), parts[-1], "/".join(parts)

    # --- looking ----------------------------------------------------------------------------------
    def lstat(self, path: str) -> Entry | None:
        """The entry at `path` (a symlink as a symlink), or None when it (or a folder above it) is absent.
        A symlink or file in place of a folder above it raises `Refused`."""
        parts = split(path)
        if not parts:
            return _entry("", os.fstat(self.fd))
        try:
            fd = self._open_dir(parts[:-1])
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return self.lstat_at(fd, parts[-1], "/".join(parts))
        finally:
            os.close(fd)

    def listdir(self, path: str = "") -> list[Entry]:
        """The entries of the folder at `path`, sorted by name."""
        fd = self._open_dir(split(path))
        prefix = "/".join(split(path))
        try:
            return sorted(self._scan(fd, prefix), key=lambda e: e.path)
        finally:
            os.close(fd)

    def _scan(self, fd: int, prefix: str) -> list[Entry]:
        found = []
        with os.scandir(fd) as entries:
            for item in entries:
                rel = f"{prefix}/{item.name}" if prefix else item.name
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed meanwhile
                target = None
                if stat.S_ISLNK(st.st_mode):
                    try:
                        target = os.readlink(item.name, dir_fd=fd)
                    except OSError:
                        target = "?"
                found.append(_entry(rel, st, target))
        return found

    def walk(self, path: str = "", *, skip: Callable[[Entry], bool] | None = None) -> Iterator[Entry]:
        """Every entry below `path`, depth first; folders are entered by fd (never through a symlink) unless
        `skip(entry)` says no."""
        for _fd, entry in self.walk_at(path, skip=skip):
            yield entry

    def walk_at(self, path: str = "", *, skip: Callable[[Entry], bool] | None = None
                ) -> Iterator[tuple[int, Entry]]:
        """`walk`, with the fd of each entry's parent folder (valid until the next item): for `*at` calls."""
        top = self._open_dir(split(path))
        stack = [(top, "/".join(split(path)))]
        try:
            while stack:
                fd, prefix = stack.pop()
                try:
                    for entry in sorted(self._scan(fd, prefix), key=lambda e: e.path):
                        yield fd, entry
                        if entry.kind != "dir" or (skip is not None and skip(entry)):
                            continue
                        try:
                            child = os.open(entry.path.rsplit("/", 1)[-1], _DIR_FLAGS, dir_fd=fd)
                        except OSError:
                            continue  # swapped for a symlink or removed since the scan: not entered
                        stack.append((child, entry.path))
                finally:
                    os.close(fd)
        finally:  # a caller that stops early leaves folders on the stack: close them too
            for fd, _prefix in stack:
                os.close(fd)

    # --- reading ----------------------------------------------------------------------------------
    def _open_regular(self, path: str) -> tuple[int, os.stat_result]:
        """An fd of the regular file at `path` (the caller closes it); anything else is `Refused`."""
        parent, name, rel = self._parent(path)
        try:
            entry = self.lstat_at(parent, name, rel)
            if entry is None:
                raise FileNotFoundError(2, "no such file", rel)
            if entry.kind != "file":
                raise Refused(f"{entry.describe()}: not {'followed' if entry.kind == 'symlink' else 'opened'}")
            try:
                fd = os.open(name, _READ_FLAGS, dir_fd=parent)
            except OSError as exc:
                now = self.lstat_at(parent, name, rel)
                if now is not None and now.kind != "file":  # swapped between the look and the open
                    raise Refused(f"{now.describe()}: not followed") from exc
                raise
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                raise Refused(f"{one_line(rel)} is {KIND_WORDS.get(kind_of(st.st_mode), 'special')}: not opened")
            os.set_blocking(fd, True)
            return fd, st
        finally:
            os.close(parent)

    def read(self, path: str, limit: int) -> Read:
        """At most `limit` bytes of the regular file at `path` (a sparse or growing file is cut there)."""
        fd, st = self._open_regular(path)
        try:
            chunks, left = [], limit + 1
            while left > 0:
                block = os.read(fd, min(left, HASH_BLOCK))
                if not block:
                    break
                chunks.append(block)
                left -= len(block)
            data = b"".join(chunks)
            return Read(data[:limit], st.st_size, len(data) > limit)
        finally:
            os.close(fd)

    def sha256(self, path: str) -> str:
        """The SHA-256 of the regular file at `path`, read in blocks (memory stays bounded)."""
        fd, _st = self._open_regular(path)
        digest = hashlib.sha256()
        try:
            while block := os.read(fd, HASH_BLOCK):
                digest.update(block)
        finally:
            os.close(fd)
        return digest.hexdigest()

    # --- writing ----------------------------------------------------------------------------------
    def write(self, path: str, data: bytes, *, mode: int = 0o644, exclusive: bool = False,
              owner: tuple[int, int] | None = None) -> Entry:
        """Write `data` to `path` through a temporary file created here, then rename it over the name
        (a symlink at `path` is replaced, never written through). Missing folders are created. With
        `exclusive`, an existing name is `FileExistsError`."""
        parent, name, rel = self._parent(path, create=True)
        try:
            existing = self.lstat_at(parent, name, rel)
            if existing is not None and existing.kind == "dir":
                raise Refused(f"{one_line(rel)} is a folder: not overwritten")
            if exclusive and existing is not None:
                raise FileExistsError(17, "exists", rel)
            tmp = f".{name[:200]}.{secrets.token_hex(6)}.wb-tmp"
            fd = os.open(tmp, _TMP_FLAGS, mode, dir_fd=parent)
            try:
                with os.fdopen(fd, "wb", closefd=False) as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(fd)
                os.fchmod(fd, mode)
                if owner is not None:
                    os.fchown(fd, *owner)
            finally:
                os.close(fd)
            try:
                if exclusive:
                    os.link(tmp, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
                    os.unlink(tmp, dir_fd=parent)
                else:
                    os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                try:
                    os.unlink(tmp, dir_fd=parent)
                except OSError:
                    pass
                raise
            entry = self.lstat_at(parent, name, rel)
            assert entry is not None
            return entry
        finally:
            os.close(parent)

    def copy_from(self, source: Confined, source_path: str, path: str, *, expect: str | None = None,
                  mode: int | None = None) -> str:
        """Copy the regular file `source_path` of `source` to `path` here, streaming and hashing it in one
        read, through a temporary file renamed over the name (a symlink at `path` is replaced, never written
        through). With `expect`, a copy whose SHA-256 differs is not put in place. Returns the SHA-256, so
        the bytes placed are exactly the bytes hashed, whatever changes in the source meanwhile."""
        src, st = source._open_regular(source_path)
        try:
            parent, name, rel = self._parent(path, create=True)
            try:
                existing = self.lstat_at(parent, name, rel)
                if existing is not None and existing.kind == "dir":
                    raise Refused(f"{one_line(rel)} is a folder: not overwritten")
                tmp = f".{name[:200]}.{secrets.token_hex(6)}.wb-tmp"
                fd = os.open(tmp, _TMP_FLAGS, 0o600, dir_fd=parent)
                digest = hashlib.sha256()
                try:
                    while block := os.read(src, HASH_BLOCK):
                        digest.update(block)
                        view = memoryview(block)
                        while view:
                            view = view[os.write(fd, view):]
                    os.fchmod(fd, stat.S_IMODE(st.st_mode) if mode is None else mode)
                finally:
                    os.close(fd)
                if expect is not None and digest.hexdigest() != expect:
                    os.unlink(tmp, dir_fd=parent)
                    return digest.hexdigest()
                try:
                    os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
                except BaseException:
                    os.unlink(tmp, dir_fd=parent)
                    raise
                return digest.hexdigest()
            finally:
                os.close(parent)
        finally:
            os.close(src)

    def symlink(self, target: str, path: str) -> None:
        """Make a symlink at `path` holding `target` as written (made, never followed: the host does not
        resolve it). Missing folders are created; an existing name is `FileExistsError`."""
        parent, name, _rel = self._parent(path, create=True)
        try:
            os.symlink(target, name, dir_fd=parent)
        finally:
            os.close(parent)

    def mkdir(self, path: str, mode: int = 0o755) -> None:
        os.close(self._open_dir(split(path), create=True))
        if mode != 0o755:
            fd = self._open_dir(split(path))
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)

    def unlink(self, path: str) -> None:
        parent, name, _rel = self._parent(path)
        try:
            os.unlink(name, dir_fd=parent)
        finally:
            os.close(parent)

    def rename(self, path: str, new_path: str) -> None:
        """Move `path` to `new_path` (both inside; the entry itself moves, whatever it is)."""
        src, name, _ = self._parent(path)
        try:
            dst, new_name, _ = self._parent(new_path, create=True)
            try:
                os.replace(name, new_name, src_dir_fd=src, dst_dir_fd=dst)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    # --- ownership --------------------------------------------------------------------------------
    def chown_tree(self, uid: int, gid: int, *, skip: Callable[[Entry], bool] | None = None) -> int:
        """Hand the folder and everything below it to uid:gid without following anything: each entry is
        changed with `fchownat(AT_SYMLINK_NOFOLLOW)` relative to its parent's fd. Returns how many changed."""
        changed = 0
        st = os.fstat(self.fd)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(self.fd, uid, gid)
            changed += 1
        for fd, entry in self.walk_at(skip=skip):
            if owned_by(entry, uid, gid):
                continue
            try:
                os.chown(entry.path.rsplit("/", 1)[-1], uid, gid, dir_fd=fd, follow_symlinks=False)
                changed += 1
            except OSError:
                pass  # removed meanwhile
        return changed


def owned_by(entry: Entry, uid: int, gid: int) -> bool:
    return entry.uid == uid and entry.gid == gid


def read_file(root: Path, path: str, limit: int) -> Read:
    """One bounded read of `path` below `root` (opens and closes the folder)."""
    with Confined(root) as folder:
        return folder.read(path, limit)
