"""Admin accounts of the dashboard, in their own small SQLite file next to the catalog.

Created from the CLI (``edgelens web add-admin``) so the first admin never travels
through a web form; the web app only checks passwords. Each account has a session
version: a session remembers the one it was signed in under and ends when it changes
(signing out, a new password), so a copied cookie is worthless afterwards. The file is
readable by its owner only (0600), as is any journal SQLite makes beside it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from edgelens.errors import ConfigError
from edgelens.webapp.security import MIN_PASSWORD_LENGTH, hash_password, verify_password

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS admins (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    session_version INTEGER NOT NULL DEFAULT 0
)
"""
# Files made before sessions were revocable lack the column.
_ADD_SESSION_VERSION = "ALTER TABLE admins ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0"
# A hash to check against when the user does not exist, so a wrong name takes as long
# to refuse as a wrong password (no user enumeration by timing).
_DUMMY_HASH = hash_password("not a real password, only for timing")
_OWNER_ONLY = 0o600


class AccountStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(path)
        self._db = sqlite3.connect(path, check_same_thread=False)
        # Requests read from their threads while sign-in and sign-out write.
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(admins)")}
            if "session_version" not in columns:
                self._db.execute(_ADD_SESSION_VERSION)

    def set_admin(self, *, username: str, password: str) -> None:
        """Create the admin, or give an existing one a new password (which ends the
        sessions signed in with the old one)."""
        if not username.strip() or len(username) > 64:
            raise ConfigError("an admin name is 1-64 characters")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ConfigError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
        password_hash = hash_password(password)
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO admins (username, password_hash, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash, "
                "session_version = session_version + 1",
                (username, password_hash, time.time()),
            )

    def authenticate(self, *, username: str, password: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash FROM admins WHERE username = ?", (username,)
            ).fetchone()
        ok = verify_password(password, row[0] if row else _DUMMY_HASH)
        return ok and row is not None

    def session_version(self, username: str) -> int | None:
        """The version a session of this admin must carry; None once there is no such
        admin. One primary-key lookup: cheap enough to ask on every request."""
        with self._lock:
            row = self._db.execute(
                "SELECT session_version FROM admins WHERE username = ?", (username,)
            ).fetchone()
        return None if row is None else int(row[0])

    def end_sessions(self, username: str) -> None:
        """Every session of this admin signed in so far stops working."""
        with self._lock, self._db:
            self._db.execute(
                "UPDATE admins SET session_version = session_version + 1 WHERE username = ?",
                (username,),
            )

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM admins").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def accounts_path(data_dir: Path) -> Path:
    return data_dir / "accounts.sqlite3"


def _owner_only(path: Path) -> None:
    """Make the database file 0600 before SQLite opens it (SQLite gives its journal and
    WAL files the database file's mode), and tighten one an older version left open."""
    path.touch(mode=_OWNER_ONLY, exist_ok=True)
    for file in (path, *(path.with_name(path.name + s) for s in ("-journal", "-wal", "-shm"))):
        try:
            if file.exists() and file.stat().st_mode & 0o077:
                file.chmod(_OWNER_ONLY)
        except OSError as exc:
            logger.warning("cannot make %s readable by its owner only: %s", file, exc)
