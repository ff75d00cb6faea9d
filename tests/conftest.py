"""Shared fixtures. Async tests run on both event loops the crawler supports (asyncio, uvloop),
through anyio's pytest plugin."""

from __future__ import annotations

from typing import Any

import pytest

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
