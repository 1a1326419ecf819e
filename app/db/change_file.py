"""A file that processes on one host share to hear each other's announcements (SQLite).

Layout: a 16-byte header (a change counter and an epoch, little-endian), then lines. Writers
take an exclusive `flock`, append their lines and then bump the counter, so a reader that
sees a new counter finds the lines already there. Readers map the header into memory: the
check before each API request compares 16 bytes, no system call (a `stat` costs a few
microseconds on a VM, a twentieth of a cached balance read). Past `MAX_BYTES` a writer starts
the lines afresh and bumps the epoch; a reader that sees a new epoch cannot know what changed
and says so (`read()` returns None), as `reopen_if_replaced()` does, which the owner calls
every `RECHECK_SECONDS` off the request path, when the file was deleted or replaced.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct

HEADER = struct.Struct("<QQ")
MAX_BYTES = 1 << 20
RECHECK_SECONDS = 1.0


def _open(path: str) -> int:
    # Readable like the database file SQLite creates (0644 less the umask): the CLI may run
    # as another user than the server.
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _header(fd: int) -> tuple[int, int]:
    raw = os.pread(fd, HEADER.size, 0)
    return HEADER.unpack(raw) if len(raw) == HEADER.size else (0, 0)


def append(path: str, lines: list[bytes]) -> None:
    """Add `lines` (each ending in a newline) and bump the counter, under the file's lock."""
    fd = _open(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        count, epoch = _header(fd)
        end = os.fstat(fd).st_size
        if end < HEADER.size or end > MAX_BYTES:
            os.ftruncate(fd, HEADER.size)
            end, epoch = HEADER.size, epoch + 1
        os.pwrite(fd, b"".join(lines), end)
        os.pwrite(fd, HEADER.pack(count + 1, epoch), 0)
    finally:
        os.close(fd)  # and the lock with it


class ChangeFile:
    """One process's view: `changed()` on every request, `read()` when it says so."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = -1
        self._map: mmap.mmap | None = None
        self._seen = b""
        self._epoch = 0
        self._offset = 0

    def open(self) -> None:
        """Map the file (made if missing); what it held before concerns nothing cached yet."""
        self.close()
        fd = _open(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size < HEADER.size:
                os.ftruncate(fd, HEADER.size)
                os.pwrite(fd, HEADER.pack(0, 0), 0)
            self._map = mmap.mmap(fd, HEADER.size, mmap.MAP_SHARED, mmap.PROT_READ)
            self._seen = self._map[: HEADER.size]
            self._epoch = HEADER.unpack(self._seen)[1]
            self._offset = os.fstat(fd).st_size
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def changed(self) -> bool:
        """The hot path: a 16-byte comparison."""
        return self._map is not None and self._map[: HEADER.size] != self._seen

    def reopen_if_replaced(self) -> bool:
        """Map the file now at the path if it is not the one mapped; whether it was not."""
        if self._fd < 0:
            return False
        try:
            current = os.stat(self.path).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(self._fd).st_ino:
            return False
        self.open()
        return True

    def read(self) -> list[bytes] | None:
        """The lines added since the last read; None when what changed cannot be known."""
        assert self._map is not None
        header = self._map[: HEADER.size]
        self._seen = header
        everything = False
        epoch = HEADER.unpack(header)[1]
        if epoch != self._epoch:
            self._epoch, self._offset, everything = epoch, HEADER.size, True
        data = os.pread(self._fd, MAX_BYTES * 2, self._offset)
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        if len(complete) < len(data):
            self._seen = b""  # a line still being written: read again on the next request
        return None if everything else complete.splitlines()
