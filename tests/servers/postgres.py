"""PostgreSQL for the production-stack tests: the server this machine runs on 127.0.0.1:5432 (user
postgres, trust auth; ``MUPPET_TEST_POSTGRES`` names another), with fresh databases in each pytest run.

The ``postgres`` fixture makes a fresh database per call (one per Prefect server a test starts) and
drops them all at the end; ``prefect_url`` gives its URL in the form Prefect's server takes
(``postgresql+asyncpg://...``, for ``PREFECT_API_DATABASE_CONNECTION_URL``). When no PostgreSQL
answers, the tests using it skip, saying why; under CI (``CI=true``) they fail instead: a
production stack that was never started is not a pass.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator

import pytest

SERVER = "postgresql://postgres@127.0.0.1:5432"
"""The PostgreSQL server the tests use unless ``MUPPET_TEST_POSTGRES`` names another."""


def server_url() -> str:
    return os.environ.get("MUPPET_TEST_POSTGRES", SERVER).rstrip("/")


def prefect_url(database: str) -> str:
    """The URL of ``database`` on the test server with Prefect's driver (asyncpg)."""
    return f"{server_url().replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(f"{server_url()}/postgres", timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def count_rows(database: str, table: str) -> int:
    """Rows of ``table`` in ``database`` on the test server (what the Prefect server wrote there)."""
    import asyncpg

    connection = await asyncpg.connect(f"{server_url()}/{database}", timeout=5)
    try:
        return await connection.fetchval(f'SELECT count(*) FROM "{table}"')
    finally:
        await connection.close()


def unavailable(reason: str) -> None:
    """Skip the test, or under CI fail it."""
    message = f"no PostgreSQL at {server_url()} ({reason}): the production-stack tests need one (user postgres, trust auth)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + "; CI=true, so this fails instead of skipping")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres() -> Iterator[Callable[[], str]]:
    """Makes fresh, empty databases on the test server (each Prefect server of the run gets its
    own; all are dropped at the end): call it for one's name."""
    made: list[str] = []

    def fresh() -> str:
        name = f"muppet_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        try:
            asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
        except Exception as exc:  # refused connection, timeout, refused login, no such role
            unavailable(f"{type(exc).__name__}: {exc}")
        made.append(name)
        return name

    try:
        yield fresh
    finally:
        for name in made:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
