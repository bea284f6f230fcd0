"""The supervision `make run` does (infra/stack.py): stand-in processes spawned through the same
Stack machinery, with backoffs of a few hundredths of a second, and fake infra scripts."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from infra.stack import Daemon, GaveUp, RestartPolicy, Restarts, Stack

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
FAILER = [sys.executable, "-c", "raise SystemExit(3)"]
QUITTER = [sys.executable, "-c", "pass"]

# Fast, and never giving up unless a test asks for it.
TINY = RestartPolicy(first_delay=0.05, max_delay=0.4, max_exits=100, window=60, stable_after=60)

MakeStack = Callable[..., Stack]


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[MakeStack]:
    """Stacks logging to a temporary directory, all stopped after the test."""
    made: list[Stack] = []

    def make(policy: RestartPolicy = TINY) -> Stack:
        stack = Stack(env={}, log_dir=tmp_path / "log", restart_policy=policy)
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.stop()


def supervise_until(stack: Stack, condition: Callable[[], bool], timeout: float = 30) -> None:
    """Call supervise_once until `condition()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s; processes: {stack.processes}")
        stack.supervise_once()
        time.sleep(0.01)


def for_at_most(seconds: float) -> Callable[[], bool]:
    """A `stopping` for Stack.supervise: true after `seconds`, so a test cannot hang."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


def supervise_for(stack: Stack, seconds: float) -> None:
    """Keep supervising for a while, to show that something does *not* happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stack.supervise_once()
        time.sleep(0.01)


def restart_lines(stack: Stack, name: str) -> list[str]:
    """The lines the supervisor appended to a process's log."""
    log = stack.log_path(name)
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.startswith("--- difts:")]


def alive(pid: int) -> bool:
    """Whether a process (not yet reaped) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_process_is_restarted_and_the_runner_and_its_log_say_so(
    make_stack: MakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = make_stack()
    stack.spawn("sleeper", SLEEPER)
    first = stack.processes["sleeper"]

    os.killpg(first.pid, signal.SIGKILL)
    supervise_until(stack, lambda: stack.processes["sleeper"] is not first)

    restarted = stack.processes["sleeper"]
    assert restarted.poll() is None
    assert restarted.args == SLEEPER
    assert restart_lines(stack, "sleeper") == [
        "--- difts: restarting after exit code -9 (attempt 1, in 0.05 s)"
    ]
    err = capsys.readouterr().err
    assert "difts: sleeper exited with code -9; restarting it in 0.05 s (attempt 1;" in err
    assert str(stack.log_path("sleeper")) in err
    assert f"difts: sleeper restarted (pid {restarted.pid})" in err


def test_each_restart_in_a_row_waits_twice_as_long_up_to_the_maximum(
    make_stack: MakeStack,
) -> None:
    stack = make_stack()
    stack.spawn("failer", FAILER)

    supervise_until(stack, lambda: len(restart_lines(stack, "failer")) >= 5)

    first_five = "\n".join(restart_lines(stack, "failer")[:5])
    delays = [float(delay) for delay in re.findall(r"in ([0-9.]+) s\)", first_five)]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.4]
    assert all("after exit code 3 " in line for line in restart_lines(stack, "failer"))


def test_an_exit_with_code_zero_is_a_failure_and_restarted_too(
    make_stack: MakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = make_stack()
    stack.spawn("quitter", QUITTER)
    first = stack.processes["quitter"]

    supervise_until(stack, lambda: stack.processes["quitter"] is not first)

    assert restart_lines(stack, "quitter")[0].startswith("--- difts: restarting after exit code 0")
    assert "quitter exited with code 0; restarting it" in capsys.readouterr().err


def test_a_process_that_keeps_dying_makes_the_supervisor_give_up_naming_it_and_its_log(
    make_stack: MakeStack,
) -> None:
    stack = make_stack(RestartPolicy(first_delay=0.02, max_delay=0.05, max_exits=2, window=60))
    stack.spawn("sleeper", SLEEPER)
    stack.spawn("failer", FAILER)

    with pytest.raises(GaveUp) as gave_up:
        stack.supervise(for_at_most(30), interval=0.01)

    reason = str(gave_up.value)
    assert reason.startswith("failer exited 3 times in ")
    assert "(more than 2 within 60 s), the last time with code 3; giving up." in reason
    assert reason.endswith(f"Its log: {stack.log_path('failer')}")
    assert restart_lines(stack, "failer")[-1].startswith("--- difts: giving up after exit code 3")
    assert len(restart_lines(stack, "failer")) == 3
    assert restart_lines(stack, "sleeper") == []


def test_a_process_removed_with_kill_is_not_restarted(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.spawn("sleeper", SLEEPER)
    pid = stack.processes["sleeper"].pid

    stack.kill("sleeper")
    supervise_for(stack, 0.5)  # ten times the first delay

    assert "sleeper" not in stack.processes
    assert not alive(pid)
    assert restart_lines(stack, "sleeper") == []


def test_a_process_removed_with_kill_while_its_restart_waits_is_not_restarted(
    make_stack: MakeStack, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = make_stack(RestartPolicy(first_delay=0.3, max_delay=0.3, window=60))
    stack.spawn("sleeper", SLEEPER)
    os.killpg(stack.processes["sleeper"].pid, signal.SIGKILL)
    supervise_until(stack, lambda: len(restart_lines(stack, "sleeper")) == 1)

    stack.kill("sleeper")  # already dead, its restart scheduled: the test wins
    supervise_for(stack, 1.0)

    assert "sleeper" not in stack.processes
    assert "sleeper restarted" not in capsys.readouterr().err


def test_stop_stops_restarted_processes_too(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.spawn("sleeper", SLEEPER)
    stack.spawn("other", SLEEPER)
    first = stack.processes["sleeper"]
    os.killpg(first.pid, signal.SIGKILL)
    supervise_until(stack, lambda: stack.processes["sleeper"] is not first)
    restarted, other = stack.processes["sleeper"], stack.processes["other"]

    stack.stop()

    assert restarted.poll() is not None
    assert other.poll() is not None
    assert stack.processes == {}
    supervise_for(stack, 0.2)
    assert stack.processes == {}


def test_supervise_returns_once_the_run_is_stopping(make_stack: MakeStack) -> None:
    stack = make_stack()
    stack.spawn("sleeper", SLEEPER)
    calls = iter([False, False, True])

    stack.supervise(lambda: next(calls), interval=0.01)

    assert stack.processes["sleeper"].poll() is None


# The rule itself, on a clock the test holds.


def test_the_delay_doubles_from_the_first_to_the_maximum() -> None:
    policy = RestartPolicy(first_delay=1, max_delay=30)

    assert [policy.delay(attempt) for attempt in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_more_than_max_exits_within_the_window_means_it_keeps_dying() -> None:
    restarts = Restarts(RestartPolicy(max_exits=5, window=60), started_at=0)

    delays = [restarts.exited(now) for now in (0.5, 2, 5, 10, 19)]
    assert delays == [1, 2, 4, 8, 16]
    assert restarts.exited(36) is None
    assert restarts.keeps_dying() == "6 times in 35.5 s (more than 5 within 60 s)"


def test_exits_older_than_the_window_do_not_count() -> None:
    restarts = Restarts(RestartPolicy(max_exits=2, window=60, stable_after=1000), started_at=0)

    assert restarts.exited(1) is not None
    assert restarts.exited(50) is not None
    assert restarts.exited(100) is not None  # the exit at 1 s has left the window
    assert restarts.exited(101) is None


def test_a_process_that_stayed_up_a_while_starts_again_from_the_first_delay() -> None:
    restarts = Restarts(RestartPolicy(first_delay=1, stable_after=30), started_at=0)
    assert restarts.exited(1) == 1
    restarts.started_at = 2
    assert restarts.exited(3) == 2
    restarts.started_at = 5

    assert restarts.exited(40) == 1
    assert restarts.attempt == 1


# Kafka and stripe-mock are daemons of infra/ scripts: watched through `status`.

FAKE_SCRIPT = """#!/usr/bin/env bash
here=$(dirname "$0")
case $1 in
  status) [ -e "$here/up" ] ;;
  start) echo start >>"$here/starts"; [ -e "$here/start-fails" ] && exit 1; touch "$here/up" ;;
esac
"""


@pytest.fixture
def fake_daemon_dir(tmp_path: Path) -> Path:
    """A directory with fake.sh, whose server is up while the file `up` exists."""
    (tmp_path / "fake.sh").write_text(FAKE_SCRIPT)
    (tmp_path / "up").touch()
    return tmp_path


def watch_until(daemon: Daemon, condition: Callable[[], bool], timeout: float = 30) -> None:
    """Call watch until `condition()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        daemon.watch()
        time.sleep(0.01)


def fake_daemon(directory: Path, ours: bool, policy: RestartPolicy = TINY) -> Daemon:
    """A Daemon over fake.sh, checked every hundredth of a second."""
    return Daemon(
        "fake", directory / "fake.sh", directory / "fake.log", ours, policy, check_every=0.01
    )


def test_a_daemon_this_run_started_is_started_again_when_it_stops_answering(
    fake_daemon_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = fake_daemon(fake_daemon_dir, ours=True)
    (fake_daemon_dir / "up").unlink()

    watch_until(daemon, lambda: (fake_daemon_dir / "up").exists() and not daemon.down)

    assert (fake_daemon_dir / "starts").read_text() == "start\n"
    err = capsys.readouterr().err
    assert "difts: fake stopped answering (`bash " in err
    assert "fake.sh start` in 0.05 s (attempt 1; log: " in err
    assert "difts: fake is answering again" in err


def test_a_daemon_that_was_already_running_is_only_reported(
    fake_daemon_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    daemon = fake_daemon(fake_daemon_dir, ours=False)
    (fake_daemon_dir / "up").unlink()

    watch_until(daemon, lambda: daemon.down)
    for _ in range(20):
        daemon.watch()
        time.sleep(0.01)

    assert not (fake_daemon_dir / "starts").exists()
    err = capsys.readouterr().err
    assert err.count("fake stopped answering") == 1
    assert "it is not restarted here: start it with `bash " in err
    (fake_daemon_dir / "up").touch()
    watch_until(daemon, lambda: not daemon.down)
    assert "difts: fake is answering again" in capsys.readouterr().err


def test_a_daemon_that_cannot_be_started_again_makes_the_run_give_up(
    fake_daemon_dir: Path,
) -> None:
    daemon = fake_daemon(fake_daemon_dir, ours=True, policy=RestartPolicy(0.02, 0.05, 2, 60))
    (fake_daemon_dir / "start-fails").touch()
    (fake_daemon_dir / "up").unlink()

    with pytest.raises(GaveUp) as gave_up:
        watch_until(daemon, lambda: False)

    reason = str(gave_up.value)
    assert reason.startswith("fake `bash ")
    assert "fake.sh start` failed with code 1; it went down 3 times in " in reason
    assert reason.endswith(f"giving up. Its log: {fake_daemon_dir / 'fake.log'}")
    assert (fake_daemon_dir / "starts").read_text() == "start\nstart\n"


def test_the_donations_back_office_is_told_where_this_stack_s_ledger_and_notifications_are(
    tmp_path: Path,
) -> None:
    ports = {"donations": 18001, "ledger": 18002, "notifications": 18003}
    environment = Stack(env={}, log_dir=tmp_path, ports=ports)._env()
    assert environment["DIFTS_LEDGER_URL"] == "http://127.0.0.1:18002"
    assert environment["DIFTS_NOTIFICATIONS_URL"] == "http://127.0.0.1:18003"
    told = Stack(env={"DIFTS_LEDGER_URL": "http://books:1"}, log_dir=tmp_path, ports=ports)
    assert told._env()["DIFTS_LEDGER_URL"] == "http://books:1"
