"""Shared fixtures. Async tests run on both event loops the crawler supports (asyncio, uvloop),
through anyio's pytest plugin."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.postgres import MISSING, REQUIRE_ENV, PostgresServer, find_bindir
from tests.tls import OPENSSL, Certificates, make_certificates


@pytest.fixture(
    params=[
        pytest.param(("asyncio", {}), id="asyncio"),
        pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA and a leaf for 127.0.0.x it signed (tests/tls.py), made once per session."""
    if OPENSSL is None:
        pytest.skip("openssl is not installed: the https tests need it to make certificates")
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (tests/postgres.py). Without one installed the
    tests that need it skip, saying how to install it; with ``$CRAWL_REQUIRE_POSTGRES`` set
    (CI) they fail instead."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(f"{MISSING} (${REQUIRE_ENV} is set)")
        pytest.skip(MISSING)
    with PostgresServer(bindir) as server:
        yield server


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the session's server: one per test."""
    return postgres.create_database()
