"""Admin accounts of the dashboard, in their own small SQLite file next to the catalog.

Created from the CLI (``edgelens web add-admin``) so the first admin never travels
through a web form; the web app only checks passwords.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from edgelens.errors import ConfigError
from edgelens.webapp.security import MIN_PASSWORD_LENGTH, hash_password, verify_password

_SCHEMA = """
CREATE TABLE IF NOT EXISTS admins (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""
# A hash to check against when the user does not exist, so a wrong name takes as long
# to refuse as a wrong password (no user enumeration by timing).
_DUMMY_HASH = hash_password("not a real password, only for timing")


class AccountStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(_SCHEMA)
        self._db.commit()

    def set_admin(self, *, username: str, password: str) -> None:
        """Create the admin, or give an existing one a new password."""
        if not username.strip() or len(username) > 64:
            raise ConfigError("an admin name is 1-64 characters")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ConfigError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
        with self._db:
            self._db.execute(
                "INSERT INTO admins (username, password_hash, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash",
                (username, hash_password(password), time.time()),
            )

    def authenticate(self, *, username: str, password: str) -> bool:
        row = self._db.execute(
            "SELECT password_hash FROM admins WHERE username = ?", (username,)
        ).fetchone()
        ok = verify_password(password, row[0] if row else _DUMMY_HASH)
        return ok and row is not None

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM admins").fetchone()[0])

    def close(self) -> None:
        self._db.close()


def accounts_path(data_dir: Path) -> Path:
    return data_dir / "accounts.sqlite3"
