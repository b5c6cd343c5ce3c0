"""The with-statement for the long-running parts that have a ``start`` and a ``close``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Lifecycle:
    """``with part:`` starts it and closes it however the block ends."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
