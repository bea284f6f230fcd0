"""Where the real infrastructure of the tests comes from.

Each part is found in this order: an address given in the environment (what `make test`
passes after starting the local processes); else a container through testcontainers when a
Docker engine answers; else the project's own infra scripts, started here and stopped after.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
# Per process, so two sessions that each start their own infrastructure never stop each other's.
TEST_VAR = REPO / "var" / f"test-fixtures-{os.getpid()}"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def docker_answers() -> bool:
    """True when a Docker engine is reachable (never on the CI machine of this project)."""
    if not shutil.which("docker"):
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextlib.contextmanager
def _infra_script(script: str, env: dict[str, str]) -> Iterator[None]:
    full_env = {**os.environ, "DIFTS_VAR": str(TEST_VAR), **env}
    subprocess.run(["bash", str(REPO / "infra" / script), "start"], env=full_env, check=True)
    try:
        yield
    finally:
        subprocess.run(["bash", str(REPO / "infra" / script), "stop"], env=full_env, check=False)


@contextlib.contextmanager
def kafka() -> Iterator[str]:
    """A Kafka bootstrap address."""
    given = os.environ.get("DIFTS_TEST_KAFKA")
    if given:
        yield given
    elif docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.3.1").with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        port = free_port()
        env = {"KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(free_port())}
        with _infra_script("kafka.sh", env):
            yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A SQLAlchemy URL of a PostgreSQL server's maintenance database, as a superuser or a
    role that may create databases."""
    given = os.environ.get("DIFTS_TEST_POSTGRES")
    if given:
        yield given
    elif docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver="psycopg") as container:
            yield container.get_connection_url()
    else:
        port = free_port()
        with _infra_script("postgres.sh", {"PGPORT": str(port)}):
            yield f"postgresql+psycopg://difts:difts@127.0.0.1:{port}/postgres"


@contextlib.contextmanager
def stripe_mock() -> Iterator[str]:
    """The base URL of a stripe-mock server."""
    given = os.environ.get("DIFTS_TEST_STRIPE")
    if given:
        yield given
    elif docker_answers():
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        with DockerContainer("stripe/stripe-mock:latest").with_exposed_ports(12111) as container:
            wait_for_logs(container, "Listening for HTTP")
            host = container.get_container_host_ip()
            yield f"http://{host}:{container.get_exposed_port(12111)}"
    else:
        port = free_port()
        env = {"STRIPE_MOCK_PORT": str(port), "STRIPE_MOCK_HTTPS_PORT": str(free_port())}
        with _infra_script("stripe-mock.sh", env):
            yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def fresh_database(admin_url: str, prefix: str = "t") -> Iterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = admin.url
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def smtp_sink(directory: Path) -> Iterator[tuple[str, int]]:
    """The project's SMTP sink as a process on a free port, keeping mail in `directory`."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "infra" / "smtp_sink.py"),
            "--port",
            str(port),
            "--maildir",
            str(directory),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        process.stdout.readline()  # "smtp sink listening on ..." once it accepts connections
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=10)
