"""The test suite's provider chain: an explicit URL, then testcontainers, then the embedded server."""

from __future__ import annotations

import os
from contextlib import ExitStack

import pytest
from sqlalchemy import create_engine, text

from tests.helpers import plain
from tests.provision import PROVIDER_VAR, URL_VAR, Server, choose_provider, provision


@pytest.mark.parametrize(
    ("environ", "docker", "expected"),
    [
        ({URL_VAR: "postgresql://u@h/db"}, True, "url"),
        ({URL_VAR: "postgresql://u@h/db"}, False, "url"),
        ({}, True, "testcontainers"),
        ({}, False, "embedded"),
        ({PROVIDER_VAR: "embedded"}, True, "embedded"),
        ({PROVIDER_VAR: "testcontainers", URL_VAR: "postgresql://u@h/db"}, False, "testcontainers"),
    ],
)
def test_choice(environ: dict[str, str], docker: bool, expected: str) -> None:
    assert choose_provider(environ, lambda: docker) == expected


def test_the_url_wins_without_asking_docker() -> None:
    def docker() -> bool:
        raise AssertionError("Docker must not be probed when a URL is given")

    assert choose_provider({URL_VAR: "postgresql://u@h/db"}, docker) == "url"


def test_a_bad_forced_provider_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected one of url, testcontainers, embedded"):
        choose_provider({PROVIDER_VAR: "docker"}, lambda: False)


def test_this_session_got_the_provider_it_should(pg_server: Server) -> None:
    forced, url = os.environ.get(PROVIDER_VAR), os.environ.get(URL_VAR)
    if forced:
        assert pg_server.provider == forced
    elif url:
        assert pg_server.provider == "url"
    else:
        # As the engine answered when the run chose, once: one that came up since changes nothing.
        assert pg_server.docker_answered is not None
        assert pg_server.provider == ("testcontainers" if pg_server.docker_answered else "embedded")


def test_an_explicit_url_is_used_as_given(pg_server: Server) -> None:
    with ExitStack() as stack:
        server = provision(stack, {URL_VAR: plain(pg_server.url)})
        assert server.provider == "url"
        assert server.url.database == pg_server.url.database
        engine = create_engine(server.url)
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT 1")) == 1
        engine.dispose()
