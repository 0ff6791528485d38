"""Pytest fixtures that start Vigil's real infrastructure on free loopback ports, and always stop it.

- kafka_broker: the Tansu broker (session scope); `.address` is the bootstrap string.
- s3_server: moto's S3 server (session scope); `.address` is host:port.
- fresh_s3_server: a private moto server a test may kill (function scope).
- fresh_kafka_broker: a private broker (function scope); the services a test started on it with
  vigil_service are stopped before it.
- postgres_cluster: a throwaway PostgreSQL cluster (session scope), skipped where absent.
- database_url: parametrized over SQLite and PostgreSQL, a fresh empty database per test.
- sqlite_url: a fresh SQLite database file per test.
- issuer: a TokenIssuer with a fresh keypair (session scope); services started here trust it.
- vigil_service: factory starting any Vigil service as a subprocess (vigil_testing.services).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vigil_kit import embedded
from vigil_testing.postgres import PostgresCluster, pg_bin
from vigil_testing.services import (  # issuer, vigil_service: registers the service fixtures
    STARTED,
    failure_logs,
    issuer,  # noqa: F401
    stop_together,
    vigil_service,  # noqa: F401
)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[object]:
    """A failed test that started services reports their warnings and errors beside its traceback."""
    report = yield
    services = item.stash.get(STARTED, None)
    if services and report.failed and report.when in ("setup", "call"):
        report.sections.append(("vigil service logs", failure_logs(services)))
    return report


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedProcess]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with embedded.tansu(log_path=log) as broker:
        yield broker


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedProcess]:
    log = tmp_path_factory.mktemp("s3") / "moto.log"
    with embedded.moto_s3(log_path=log) as server:
        yield server


@pytest.fixture
def fresh_s3_server(tmp_path) -> Iterator[embedded.EmbeddedProcess]:
    with embedded.moto_s3(log_path=tmp_path / "moto.log") as server:
        yield server


@pytest.fixture
def fresh_kafka_broker(request: pytest.FixtureRequest, tmp_path) -> Iterator[embedded.EmbeddedProcess]:
    with embedded.tansu(log_path=tmp_path / "tansu.log") as broker:
        yield broker
        # The test's services on this broker stop before it, whatever order its fixtures tear down in:
        # the broker waits seconds for connected clients before it exits.
        stop_together(
            *(s for s in request.node.stash.get(STARTED, []) if s.kafka_bootstrap == broker.address)
        )


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    if pg_bin() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed on this machine")
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'vigil.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'vigil.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database()
