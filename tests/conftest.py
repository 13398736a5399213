"""Shared fixtures: real PostgreSQL 15/16/17/18 servers and a moto server.

Servers are session-scoped; under pytest-xdist each worker starts its own (lazily, only the
ones its tests use). Server binaries are installed by ``tools/install-test-servers.sh``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from harness import TERRAFORM_1_0, Background, Database, MotoServer, PostgresServer, Terraform

SUPPORTED_PG_VERSIONS = (16, 17)


def _pg_fixture(version: int):
    @pytest.fixture(scope="session", name=f"pg{version}")
    def _fixture() -> Iterator[PostgresServer]:
        server = PostgresServer(version).start()
        try:
            yield server
        finally:
            server.stop()

    return _fixture


pg15 = _pg_fixture(15)
pg16 = _pg_fixture(16)
pg17 = _pg_fixture(17)
pg18 = _pg_fixture(18)


@pytest.fixture(
    scope="session",
    params=SUPPORTED_PG_VERSIONS,
    ids=[f"pg{v}" for v in SUPPORTED_PG_VERSIONS],
)
def pg_server(request: pytest.FixtureRequest) -> PostgresServer:
    """Each supported PostgreSQL server (the tests using it run once per version)."""
    return request.getfixturevalue(f"pg{request.param}")


@pytest.fixture
def immuta_db(pg_server: PostgresServer) -> Iterator[Database]:
    """A fresh, empty, uniquely named database (immuta_<hex>) on pg_server; dropped after."""
    db = pg_server.temp_database(prefix="immuta_")
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture
def immuta(pg17: PostgresServer) -> Iterator[Database]:
    """A fresh, empty, uniquely named database on PostgreSQL 17 alone; dropped after."""
    db = pg17.temp_database()
    try:
        yield db
    finally:
        db.drop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def terraform(tmp_path) -> Terraform:
    """A Terraform working directory using the provider from dist/ (run ./build.sh first)."""
    return Terraform(tmp_path / "tf")


@pytest.fixture
def background() -> Iterator[Callable[..., Background]]:
    """Start terraform commands in the background; any still running at the end are killed."""
    started: list[Background] = []

    def start(tf: Terraform, *args: str) -> Background:
        started.append(Background(tf, *args))
        return started[-1]

    try:
        yield start
    finally:
        for command in started:
            command.close()


@pytest.fixture
def terraform_1_0(tmp_path) -> Terraform:
    """Like `terraform`, run by Terraform 1.0.3 (installed by tools/install-test-servers.sh)."""
    if not TERRAFORM_1_0.is_file():
        pytest.fail(f"{TERRAFORM_1_0} is missing: run tools/install-test-servers.sh")
    return Terraform(tmp_path / "tf", binary=TERRAFORM_1_0)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pg17_only: behaviour that does not depend on the server version; runs on PostgreSQL 17 "
        "only (the pg16 variant is deselected, not skipped)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    dropped = [
        item for item in items if item.get_closest_marker("pg17_only") and "[pg16" in item.nodeid
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
