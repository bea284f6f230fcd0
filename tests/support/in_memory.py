"""A unit of work kept in memory, for a service's unit-test fake: a transaction is a snapshot
of the fake's repositories (those named in PARTS, else every public attribute but
`committed`), restored when the block, or a savepoint in it, raises; `committed` counts clean
exits."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self


class InMemoryUnitOfWork:
    """The base of an in-memory unit of work: subclasses build their parts (and may name
    them in PARTS)."""

    PARTS: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.committed = 0
        self._begun: list[dict[str, Any]] = []

    def _snapshot(self) -> dict[str, Any]:
        parts = self.PARTS or [
            name for name in vars(self) if not name.startswith("_") and name != "committed"
        ]
        return {name: copy.deepcopy(getattr(self, name)) for name in parts}

    def _restore(self, snapshot: dict[str, Any]) -> None:
        for name, value in snapshot.items():
            setattr(self, name, value)

    def __enter__(self) -> Self:
        assert not self._begun, "the unit of work is not reentrant"
        self._begun.append(self._snapshot())
        return self

    def __exit__(self, exc_type: Any, *_rest: Any) -> None:
        snapshot = self._begun.pop()
        if exc_type is None:
            self.committed += 1
        else:
            self._restore(snapshot)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """What happens inside is undone alone if it raises."""
        snapshot = self._snapshot()
        try:
            yield
        except BaseException:
            self._restore(snapshot)
            raise
