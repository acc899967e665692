"""Fixtures of the client matrix modules."""

import pytest

from tests.support import KopServer


@pytest.fixture(scope="module")
def server(request, tmp_path_factory):
    """A kop-fast of the module's own, whose new groups start at once (the default 3 s delay
    applies every time a group goes from empty to having a member)."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    srv = KopServer(tmp_path_factory.mktemp(name) / "data", "--group-initial-rebalance-delay-ms", "0")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
