"""The whole difts system as local processes: each service under gunicorn plus its worker
(outbox relay, consumer, sender), with their logs under one directory.

`make run` uses `python -m infra.stack run`, which also supervises what it started, as the
`restart: on-failure` of docker-compose.yml would: a process that exits is started again
with an exponential backoff, and the run gives up only when one keeps dying (`RestartPolicy`).
The end-to-end tests use `Stack` directly and supervise nothing: a test that kills a process
restarts it itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("donations", "ledger", "notifications")
DEFAULT_PORTS = {"donations": 8001, "ledger": 8002, "notifications": 8003}


def say(message: str) -> None:
    """Progress for people, on stderr."""
    print(f"difts: {message}", file=sys.stderr, flush=True)


class GaveUp(RuntimeError):
    """Something keeps dying: the runner stops everything rather than restart it forever."""


@dataclass(frozen=True)
class RestartPolicy:
    """When a process that exited is started again, and when the runner stops trying.

    The n-th restart in a row waits `first_delay * 2 ** (n - 1)` seconds, at most `max_delay`.
    A process that had stayed up `stable_after` seconds starts again from `first_delay`. More
    than `max_exits` exits within `window` seconds mean it keeps dying: give up.
    """

    first_delay: float = 1.0
    max_delay: float = 30.0
    max_exits: int = 5
    window: float = 60.0
    stable_after: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before restart number `attempt` (1, 2, ...) in a row."""
        return min(self.max_delay, self.first_delay * 2 ** (attempt - 1))


@dataclass
class Restarts:
    """The history of one supervised thing: its last start, its recent exits, its backoff."""

    policy: RestartPolicy
    started_at: float
    attempt: int = 0
    exits: deque[float] = field(default_factory=deque)
    due: float | None = None

    def exited(self, now: float) -> float | None:
        """Count an exit at `now`: the delay before starting again, or None if it keeps dying."""
        if now - self.started_at >= self.policy.stable_after:
            self.attempt = 0
        self.exits.append(now)
        while now - self.exits[0] > self.policy.window:
            self.exits.popleft()
        if len(self.exits) > self.policy.max_exits:
            return None
        self.attempt += 1
        delay = self.policy.delay(self.attempt)
        self.due = now + delay
        return delay

    def keeps_dying(self) -> str:
        """How often it died lately, for the message that gives up."""
        span = round(self.exits[-1] - self.exits[0], 1)
        return (
            f"{len(self.exits)} times in {span:g} s"
            f" (more than {self.policy.max_exits} within {self.policy.window:g} s)"
        )


@dataclass
class Stack:
    """The three services' processes, started and stopped together.

    `spawn` remembers each process's command line, so that `supervise_once` (called by
    `make run`, never behind the caller's back) can start it again identically.
    """

    env: dict[str, str]
    log_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    gunicorn_workers: int = 2
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    argvs: dict[str, list[str]] = field(default_factory=dict, init=False)
    restarts: dict[str, Restarts] = field(default_factory=dict, init=False)

    def url(self, service: str) -> str:
        """The base URL of one service."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def log_path(self, name: str) -> Path:
        """Where the output of process `name` goes."""
        return self.log_dir / f"{name}.log"

    def _env(self) -> dict[str, str]:
        # The donations back office asks this stack's ledger and notifications, whatever ports
        # they were given (unless the stack's own environment says otherwise).
        peers = {
            "DIFTS_LEDGER_URL": self.url("ledger"),
            "DIFTS_NOTIFICATIONS_URL": self.url("notifications"),
        }
        return {**os.environ, **peers, **self.env, "PYTHONUNBUFFERED": "1"}

    def manage(self, service: str, *command: str) -> None:
        """Run `python -m services.<service> <command>` to completion."""
        result = subprocess.run(
            [sys.executable, "-m", f"services.{service}", *command],
            env=self._env(),
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"`python -m services.{service} {' '.join(command)}` failed:\n"
                f"{result.stderr[-3000:]}"
            )

    def migrate(self) -> None:
        """Bring every service's database to the newest schema."""
        for service in SERVICES:
            self.manage(service, "migrate")

    def metrics_dir(self, service: str) -> Path:
        """Where a service's processes keep their metrics samples (prometheus_client's
        multiprocess mode): its web workers and its worker write there, /metrics reads all."""
        return self.log_dir.parent / "metrics" / service

    def _popen(self, name: str, argv: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        service = name.rsplit("-", 1)[0]
        env = self._env()
        if service in SERVICES:
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.metrics_dir(service))
        # The child gets its own copy of the descriptor; ours is closed so restarts leak none.
        with open(self.log_path(name), "ab") as log:
            self.processes[name] = subprocess.Popen(
                argv,
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: Ctrl-C reaches only the runner, which stops it in order.
                start_new_session=True,
            )

    def spawn(self, name: str, argv: list[str]) -> None:
        """Start process `name`, its output appended to its log, and remember how."""
        self._popen(name, argv)
        self.argvs[name] = list(argv)
        self.restarts[name] = Restarts(self.restart_policy, started_at=time.monotonic())

    def start_web(self, service: str) -> None:
        """Start one service's HTTP API under gunicorn."""
        self.spawn(
            f"{service}-web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{self.ports[service]}",
                "--workers",
                str(self.gunicorn_workers),
                "--threads",
                "4",
                "--graceful-timeout",
                "5",
                "--timeout",
                "60",
                # gunicorn's control socket has one default path per user: several gunicorns
                # (make run, the end-to-end tests) would share it.
                "--no-control-socket",
                # Its child_exit hook keeps the metrics of dead workers out of /metrics.
                "--config",
                "python:services.shared.gunicorn_conf",
                f"services.{service}.app:create_app()",
            ],
        )

    def start_worker(self, service: str) -> None:
        """Start one service's background worker (relay, consumer, sender)."""
        self.spawn(f"{service}-worker", [sys.executable, "-m", f"services.{service}", "worker"])

    def start(self, services: Iterable[str] = SERVICES) -> None:
        """Start the web process and the worker of each service (on fresh metrics)."""
        for service in services:
            shutil.rmtree(self.metrics_dir(service), ignore_errors=True)
            self.metrics_dir(service).mkdir(parents=True)
            self.start_web(service)
            self.start_worker(service)

    def wait_ready(self, timeout: float = 60.0, supervise: bool = False) -> None:
        """Wait until every service answers /readyz with 200; say which did not.

        A process that dies meanwhile fails the wait, unless `supervise`: then it is restarted
        by `supervise_once` (and only one that keeps dying fails it).
        """
        deadline = time.monotonic() + timeout
        pending = {service for service in SERVICES if f"{service}-web" in self.processes}
        while pending:
            for service in sorted(pending):
                if supervise:
                    self.supervise_once()
                elif died := self._died():
                    raise RuntimeError(f"{died} exited; see {self.log_path(died)}")
                try:
                    with urllib.request.urlopen(f"{self.url(service)}/readyz", timeout=2) as reply:  # noqa: S310 - our own http URL
                        if reply.status == 200:
                            pending.discard(service)
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    pass
            if pending and time.monotonic() > deadline:
                raise RuntimeError(
                    f"not ready after {timeout:.0f}s: {', '.join(sorted(pending))};"
                    f" see the logs in {self.log_dir}"
                )
            if pending:
                time.sleep(0.2)

    def _died(self) -> str | None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                return name
        return None

    def supervise_once(self) -> None:
        """Look at every process once: note the ones that exited and restart those whose
        backoff is over. Any exit is a failure, code 0 too: nothing here ends on its own.

        Raises GaveUp, naming the process and its log, when one keeps dying; the caller stops
        everything. A process removed with `kill()` is not ours to restart any more.
        """
        now = time.monotonic()
        for name, process in list(self.processes.items()):
            record = self.restarts.get(name)
            if record is None:
                continue
            if record.due is not None:
                if now >= record.due:
                    self._restart(name, record)
                continue
            code = process.poll()
            if code is None:
                continue
            self._kill_leftovers(process)
            self._forget_live_gauges(name, process.pid)
            delay = record.exited(now)
            log = self.log_path(name)
            if delay is None:
                self._note(log, f"giving up after exit code {code}: {record.keeps_dying()}")
                raise GaveUp(
                    f"{name} exited {record.keeps_dying()}, the last time with code {code};"
                    f" giving up. Its log: {log}"
                )
            self._note(
                log, f"restarting after exit code {code} (attempt {record.attempt}, in {delay:g} s)"
            )
            say(
                f"{name} exited with code {code}; restarting it in {delay:g} s"
                f" (attempt {record.attempt}; log: {log})"
            )

    def _forget_live_gauges(self, name: str, pid: int) -> None:
        """A dead process's live gauges leave its service's metrics (as gunicorn's child_exit
        does for its workers)."""
        for sample in self.metrics_dir(name.rsplit("-", 1)[0]).glob(f"gauge_live*_{pid}.db"):
            sample.unlink(missing_ok=True)

    def supervise(
        self,
        stopping: Callable[[], bool],
        interval: float = 0.5,
        daemons: Iterable[Daemon] = (),
    ) -> None:
        """Call `supervise_once` (and watch `daemons`) every `interval` seconds until
        `stopping()` is true; raises GaveUp when something keeps dying."""
        while not stopping():
            self.supervise_once()
            for daemon in daemons:
                daemon.watch()
            time.sleep(interval)

    def _restart(self, name: str, record: Restarts) -> None:
        self._popen(name, self.argvs[name])
        record.started_at = time.monotonic()
        record.due = None
        say(f"{name} restarted (pid {self.processes[name].pid})")

    @staticmethod
    def _kill_leftovers(process: subprocess.Popen[bytes]) -> None:
        # What survives a dead leader in its group (gunicorn's workers) would keep its port.
        # The group id cannot be reused while any member lives, so this reaches only those.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)

    @staticmethod
    def _note(log: Path, message: str) -> None:
        with open(log, "a", encoding="utf-8") as file:
            file.write(f"--- difts: {message}\n")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one process (e.g. "ledger-worker") and forget it: it is not restarted."""
        process = self.processes.pop(name)
        self.restarts.pop(name, None)
        if process.poll() is None:
            os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop(self) -> None:
        """Stop every process, restarted ones too: SIGTERM, then SIGKILL after 10 s."""
        # Forgotten first, so nothing that is stopping gets restarted.
        self.restarts.clear()
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()


@dataclass
class Daemon:
    """A server an infra/ script runs as a daemon (Kafka, stripe-mock). It is not our child,
    so `<script> status` tells every `check_every` seconds whether it still answers. One this
    run started is brought back with `<script> start` under `policy`; one that was already
    running belongs to someone else and is only reported.
    """

    name: str
    script: Path
    log: Path
    ours: bool
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    check_every: float = 10.0
    down: bool = False
    restarts: Restarts = field(init=False)
    starting: subprocess.Popen[bytes] | None = field(init=False, default=None)
    next_check: float = field(init=False)

    def __post_init__(self) -> None:
        now = time.monotonic()
        self.restarts = Restarts(self.policy, started_at=now)
        self.next_check = now + self.check_every

    def _script(self, action: str, **options: Any) -> subprocess.Popen[bytes]:
        # A session of its own: a Ctrl-C meant for the runner must not fail a status or a start.
        return subprocess.Popen(
            ["bash", str(self.script), action], cwd=REPO, start_new_session=True, **options
        )

    def _shown(self, action: str) -> str:
        script = self.script.relative_to(REPO) if self.script.is_relative_to(REPO) else self.script
        return f"`bash {script} {action}`"

    def watch(self) -> None:
        """One look: finish a start under way, start again when the backoff is over, or check
        the status when it is time. Raises GaveUp when it keeps going down."""
        now = time.monotonic()
        if self.starting is not None:
            code = self.starting.poll()
            if code is None:
                return
            self.starting = None
            if code != 0:
                self._went_down(now, f"{self._shown('start')} failed with code {code}")
                return
            self.restarts.started_at = now
            self.next_check = now + self.check_every
            self.down = False
            say(f"{self.name} is answering again")
            return
        if self.restarts.due is not None:
            if now >= self.restarts.due:
                self.restarts.due = None
                # Not waited for here: a start may take a minute, and the processes need us.
                self.starting = self._script("start")
            return
        if now < self.next_check:
            return
        self.next_check = now + self.check_every
        quiet = subprocess.DEVNULL
        if self._script("status", stdout=quiet, stderr=quiet).wait() == 0:
            if self.down:
                say(f"{self.name} is answering again")
            self.down = False
            return
        if not self.ours:
            if not self.down:
                say(
                    f"{self.name} stopped answering ({self._shown('status')} failed). It was"
                    f" running before this run, so it is not restarted here: start it with"
                    f" {self._shown('start')} (log: {self.log})"
                )
            self.down = True
            return
        self.down = True
        self._went_down(now, f"stopped answering ({self._shown('status')} failed)")

    def _went_down(self, now: float, what: str) -> None:
        delay = self.restarts.exited(now)
        if delay is None:
            raise GaveUp(
                f"{self.name} {what}; it went down {self.restarts.keeps_dying()};"
                f" giving up. Its log: {self.log}"
            )
        say(
            f"{self.name} {what}; starting it again with {self._shown('start')} in {delay:g} s"
            f" (attempt {self.restarts.attempt}; log: {self.log})"
        )

    def close(self) -> None:
        """Wait for a start still under way, so that a stop after it finds what it started."""
        if self.starting is not None:
            say(f"waiting for {self._shown('start')} under way to finish...")
            try:
                self.starting.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.starting.kill()
                self.starting.wait()
            self.starting = None


DAEMON_LOGS = {
    "kafka": Path("kafka") / "logs" / "kafka.out",
    "stripe-mock": Path("stripe-mock") / "stripe-mock.log",
}


def _script(name: str, action: str) -> int:
    quiet = subprocess.DEVNULL if action == "status" else None
    return subprocess.run(
        ["bash", str(REPO / "infra" / name), action], cwd=REPO, stdout=quiet, stderr=quiet
    ).returncode


def run() -> None:
    """`make run`: the whole system on the embedded defaults, supervised, until Ctrl-C."""
    var = Path(os.environ.get("DIFTS_VAR", REPO / "var"))
    started_infra: list[str] = []
    daemons: list[Daemon] = []
    stack = Stack(env={}, log_dir=var / "log")
    stopping = False

    def _interrupt(_signum: int, _frame: object) -> None:
        # Only a flag: a second Ctrl-C must not re-enter anything that takes a lock.
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        for step, script in enumerate(("kafka.sh", "stripe-mock.sh"), start=1):
            name = script.removesuffix(".sh")
            say(f"[{step}/6] starting {name}...")
            ours = _script(script, "status") != 0
            if ours:
                if _script(script, "start") != 0:
                    raise RuntimeError(f"infra/{script} start failed (see the lines above)")
                started_infra.append(script)
            daemons.append(
                Daemon(name, REPO / "infra" / script, var / DAEMON_LOGS[name], ours=ours)
            )
        smtp_port = os.environ.get("SMTP_PORT", "2525")
        say(
            f"[3/6] starting the SMTP sink on 127.0.0.1:{smtp_port}, mail kept in {var / 'mail'}..."
        )
        stack.spawn(
            "smtp-sink",
            [
                sys.executable,
                str(REPO / "infra" / "smtp_sink.py"),
                "--port",
                smtp_port,
                "--maildir",
                str(var / "mail"),
            ],
        )
        say("[4/6] migrating the SQLite databases and creating Kafka topics...")
        stack.migrate()
        subprocess.run([sys.executable, "-m", "services.shared", "topics"], cwd=REPO, check=True)
        stack.manage("donations", "seed-demo")
        say("[5/6] starting the services...")
        stack.start()
        stack.wait_ready(supervise=True)
        say("[6/6] ready.")
        policy = stack.restart_policy
        print(
            f"""
difts is running. Ctrl-C stops everything this command started. A process that exits is
restarted after {policy.first_delay:g} s, doubling to {policy.max_delay:g} s; more than \
{policy.max_exits} exits within {policy.window:g} s stop everything.

  campaign page  {stack.url("donations")}/campaigns/petites-cantines   (give in a browser)
  back office    {stack.url("donations")}/backoffice/   (first create an account, in another
                 terminal: make account EMAIL=you@example.org ROLE=admin+finance)
  donations      {stack.url("donations")}   (API: /api/v1/campaigns/petites-cantines,
                                        OpenAPI: /openapi.json, Stripe webhook: /webhooks/stripe)
  ledger         {stack.url("ledger")}   (/api/v1/campaigns/petites-cantines/summary)
  notifications  {stack.url("notifications")}   (/api/v1/deliveries, bearer token)
  stripe-mock    http://127.0.0.1:12111
  SMTP sink      127.0.0.1:{smtp_port}, every message kept as an .eml file in {var / "mail"}
  logs           {var / "log"}
""",
            flush=True,
        )
        stack.supervise(lambda: stopping, daemons=daemons)
    finally:
        say("stopping...")
        stack.stop()
        for daemon in daemons:
            daemon.close()
        for script in reversed(started_infra):
            _script(script, "stop")
        say("stopped.")


if __name__ == "__main__":
    if sys.argv[1:] != ["run"]:
        raise SystemExit("usage: python -m infra.stack run")
    try:
        run()
    except RuntimeError as error:
        say(f"ERROR: {error}")
        raise SystemExit(1) from error
