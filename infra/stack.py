"""The whole difts system as local processes: each service under gunicorn plus its worker
(outbox relay, consumer, sender), with their logs under one directory.

`make run` uses `python -m infra.stack run`; the end-to-end tests use `Stack` directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("donations", "ledger", "notifications")
DEFAULT_PORTS = {"donations": 8001, "ledger": 8002, "notifications": 8003}


def say(message: str) -> None:
    """Progress for people, on stderr."""
    print(f"difts: {message}", file=sys.stderr, flush=True)


@dataclass
class Stack:
    """The three services' processes, started and stopped together."""

    env: dict[str, str]
    log_dir: Path
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    gunicorn_workers: int = 2
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        """The base URL of one service."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}

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

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.processes[name] = subprocess.Popen(
            argv,
            env=self._env(),
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_web(self, service: str) -> None:
        """Start one service's HTTP API under gunicorn."""
        self._spawn(
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
                f"services.{service}.app:create_app()",
            ],
        )

    def start_worker(self, service: str) -> None:
        """Start one service's background worker (relay, consumer, sender)."""
        self._spawn(f"{service}-worker", [sys.executable, "-m", f"services.{service}", "worker"])

    def start(self, services: Iterable[str] = SERVICES) -> None:
        """Start the web process and the worker of each service."""
        for service in services:
            self.start_web(service)
            self.start_worker(service)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every service answers /readyz with 200; say which did not."""
        deadline = time.monotonic() + timeout
        pending = {service for service in SERVICES if f"{service}-web" in self.processes}
        while pending:
            for service in sorted(pending):
                died = self._died()
                if died:
                    raise RuntimeError(f"{died} exited; see {self.log_dir / (died + '.log')}")
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

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one process (e.g. "ledger-worker") and forget it."""
        process = self.processes.pop(name)
        os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop(self) -> None:
        """Stop every process: SIGTERM, then SIGKILL after 10 s."""
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


def _script(name: str, action: str) -> int:
    quiet = subprocess.DEVNULL if action == "status" else None
    return subprocess.run(
        ["bash", str(REPO / "infra" / name), action], cwd=REPO, stdout=quiet, stderr=quiet
    ).returncode


def run() -> None:
    """`make run`: the whole system on the embedded defaults, until Ctrl-C."""
    var = Path(os.environ.get("DIFTS_VAR", REPO / "var"))
    started_infra: list[str] = []
    sink: subprocess.Popen[bytes] | None = None
    stack = Stack(env={}, log_dir=var / "log")
    stopping = False

    def _interrupt(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        for step, script in enumerate(("kafka.sh", "stripe-mock.sh"), start=1):
            say(f"[{step}/6] starting {script.removesuffix('.sh')}...")
            if _script(script, "status") != 0:
                if _script(script, "start") != 0:
                    raise RuntimeError(f"infra/{script} start failed (see the lines above)")
                started_infra.append(script)
        say("[3/6] starting the SMTP sink on 127.0.0.1:2525 (mail kept in var/mail)...")
        sink = subprocess.Popen(
            [
                sys.executable,
                str(REPO / "infra" / "smtp_sink.py"),
                "--port",
                os.environ.get("SMTP_PORT", "2525"),
                "--maildir",
                str(var / "mail"),
            ],
            cwd=REPO,
        )
        say("[4/6] migrating the SQLite databases and creating Kafka topics...")
        stack.migrate()
        subprocess.run([sys.executable, "-m", "services.shared", "topics"], cwd=REPO, check=True)
        stack.manage("donations", "seed-demo")
        say("[5/6] starting the services...")
        stack.start()
        stack.wait_ready()
        say("[6/6] ready.")
        print(
            f"""
difts is running. Ctrl-C stops everything this command started.

  campaign page  {stack.url("donations")}/campaigns/petites-cantines   (give in a browser)
  donations      {stack.url("donations")}   (API: /api/v1/campaigns/petites-cantines,
                                        OpenAPI: /openapi.json, Stripe webhook: /webhooks/stripe)
  ledger         {stack.url("ledger")}   (/api/v1/campaigns/petites-cantines/summary)
  notifications  {stack.url("notifications")}   (/api/v1/deliveries, bearer token)
  stripe-mock    http://127.0.0.1:12111
  SMTP sink      127.0.0.1:2525, every message kept as an .eml file in {var / "mail"}
  logs           {var / "log"}
""",
            flush=True,
        )
        while not stopping:
            died = stack._died()
            if died:
                raise RuntimeError(f"{died} exited; see {stack.log_dir / (died + '.log')}")
            time.sleep(0.5)
    finally:
        say("stopping...")
        stack.stop()
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)
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
