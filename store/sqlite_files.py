"""Coordination around one SQLite file that SQLite itself does not offer: a lock shared
by every process writing it, and a thread that fsyncs its WAL soon after commits made
without an fsync."""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger("pmguard.intake")


def create_private(database: Path) -> None:
    """Create a SQLite file's directory (0700) and the file itself (0600) unless they
    exist, before SQLite opens it: it would create the file 0644 under the usual umask.
    SQLite gives the -wal, -shm and -journal files the database file's own mode.

    They hold password hashes and the text of every postmortem checked. Existing files
    and directories keep the mode they have: an administrator may have chosen it."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # O_EXCL-free on purpose: another process creating it at the same moment is fine.
    fd = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


class WriterLock:
    """An advisory lock shared by every process writing one SQLite file; a no-op for
    other databases and for in-memory SQLite. SQLite's own busy handler polls with sleeps
    of 1 to 100 ms; a blocked `flock` wakes as soon as the holder releases it."""

    def __init__(self, database: Path | None) -> None:
        """`database`: the SQLite file, or None for no lock at all."""
        self.path = None if database is None else database.with_name(
            database.name + ".intake-lock")
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        if self.path is None:
            return
        if self._fd is None or self._pid != os.getpid():
            # A forked child must not share the parent's open file description: flock
            # locks belong to it, so parent and child would never exclude each other.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        if self.path is not None and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class WalFlusher:
    """Process-crash durability on SQLite: the WAL is fsynced from a background thread
    within `interval` of a commit, so a power cut loses at most that much of what was
    answered 202 (PostgreSQL's WAL writer gives synchronous_commit=off the same bound)."""

    def __init__(self, wal_path: Path, interval: float) -> None:
        self.path = wal_path
        self.interval = interval
        self.flushes = 0
        self._dirty = threading.Event()
        self._fd: int | None = None
        self._pid = 0

    def committed(self) -> None:
        if self._pid != os.getpid():  # first commit in this process (or after a fork)
            self._pid = os.getpid()
            self._dirty = threading.Event()
            self._fd = None
            threading.Thread(target=self._run, name="pmguard-wal-flush", daemon=True).start()
            atexit.register(self.flush)
        self._dirty.set()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            time.sleep(self.interval)
            # Cleared before the fsync: a commit landing during it sets it again.
            self._dirty.clear()
            self.flush()

    def flush(self) -> None:
        try:
            if self._fd is None or os.fstat(self._fd).st_nlink == 0:
                # The WAL is deleted when its last connection closes; a new one is a new
                # file.
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                if not self.path.exists():
                    return  # checkpointed into the database and removed: nothing to sync
                self._fd = os.open(self.path, os.O_RDONLY)
            os.fdatasync(self._fd)
            self.flushes += 1
        except OSError:
            log.exception("could not fsync %s; the next commit tries again", self.path)
