"""What every benchmark shares: the real parts it runs on (started when not given, stopped
after), progress on stderr, and the rows of results `make bench` prints and writes to
var/bench/results.json.

A row measures one pipeline against a baseline measured in the same run on the same parts
(its ratio is what the target is about: the machine's speed cancels out), or against an
absolute bound when the issue names one (then the machine is named in the results).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "var" / "bench" / "results.json"


def say(message: str) -> None:
    """Progress on stderr (the results table goes to stdout)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    """One line of the results table.

    `measured` and `baseline` are in `unit`. When `higher_is_better` (a rate), the ratio is
    measured / baseline; else (a duration) baseline / measured, so a ratio above 1 always
    means faster than the baseline. `min_ratio` is the target ratio; `max_value` an absolute
    target (e.g. a p99 in seconds)."""

    pipeline: str
    measured: float
    unit: str
    target: str
    baseline: float | None = None
    baseline_name: str = ""
    higher_is_better: bool = True
    min_ratio: float | None = None
    max_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.measured or not self.baseline:
            return None
        if self.higher_is_better:
            return self.measured / self.baseline
        return self.baseline / self.measured

    @property
    def met(self) -> bool:
        ok = True
        if self.min_ratio is not None:
            ok = ok and self.ratio is not None and self.ratio >= self.min_ratio
        if self.max_value is not None:
            ok = ok and self.measured < self.max_value
        return ok

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


@dataclass
class Bench:
    """One `make bench` run: its parts, its scratch directory and its results."""

    workdir: Path
    events: int
    quick: bool = False
    rows: list[Row] = field(default_factory=list)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _parts: dict[str, Any] = field(default_factory=dict)

    def record(self, row: Row) -> None:
        """Keep a row and say it at once (a long run shows its results as they come)."""
        self.rows.append(row)
        ratio = f", x{row.ratio:.2f} the baseline" if row.ratio is not None else ""
        met = "met" if row.met else "NOT met"
        say(f"{row.pipeline}: {figure(row.measured)} {row.unit}{ratio} ({met})")

    # The parts: DIFTS_TEST_* addresses when given (as `make test` passes them), else started
    # by the project's own scripts (tests/support/infra.py) and stopped when the run ends.

    def _part(self, name: str) -> Any:
        if name not in self._parts:
            from tests.support import infra

            say(f"finding or starting {name}...")
            self._parts[name] = self._stack.enter_context(getattr(infra, name)())
        return self._parts[name]

    def kafka(self) -> str:
        """A Kafka bootstrap address."""
        return str(self._part("kafka"))

    def postgres_admin(self) -> str:
        """A PostgreSQL maintenance-database URL that may create databases."""
        return str(self._part("postgres"))

    def stripe_mock(self) -> str:
        """stripe-mock's base URL."""
        return str(self._part("stripe_mock"))

    def database(self, kind: str, name: str) -> str:
        """A fresh database of `kind` ("sqlite" or "postgresql") for one measurement."""
        if kind == "sqlite":
            return f"sqlite:///{self.workdir / f'{name}-{uuid.uuid4().hex[:6]}.db'}"
        from tests.support.infra import fresh_database

        return str(
            self._stack.enter_context(fresh_database(self.postgres_admin(), f"bench_{name}"))
        )

    def smtp_sink(self, directory: Path) -> tuple[str, int]:
        """A running SMTP sink keeping mail in `directory` (stopped when the run ends)."""
        from tests.support.infra import smtp_sink

        return self._stack.enter_context(smtp_sink(directory))

    def later(self, manager: contextlib.AbstractContextManager[Any]) -> Any:
        """Enter a context now, leave it when the run ends."""
        return self._stack.enter_context(manager)

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def bench_run(events: int, quick: bool) -> Iterator[Bench]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="difts-bench-") as tmp:
        bench = Bench(Path(tmp), events, quick)
        try:
            yield bench
        finally:
            bench.close()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def write_results(rows: list[Row], path: Path = RESULTS) -> None:
    """The rows as JSON, with the machine and the time of the run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "rows": [row.as_json() for row in rows],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def figure(value: float) -> str:
    """A figure for people: whole above 100, else with the decimals that say something."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table(rows: list[Row]) -> str:
    """The rows for people: pipeline, figure, baseline, ratio, target, met."""
    lines = [
        "| pipeline | measured | baseline in the same run | ratio | target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        baseline = (
            f"{row.baseline_name}: {figure(row.baseline)} {row.unit}"
            if row.baseline is not None
            else "(absolute)"
        )
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        lines.append(
            f"| {row.pipeline} | {figure(row.measured)} {row.unit} | {baseline} | {ratio} "
            f"| {row.target} | {'yes' if row.met else 'NO'} |"
        )
    return "\n".join(lines)
