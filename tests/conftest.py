import os

import pytest

from tests.support import KopServer


def pytest_configure(config):
    # A broken build must not pass quietly on the pure twin.
    if os.environ.get("KOP_FAST_EXPECT_EXTENSIONS") == "1" and os.environ.get("KOP_FAST_NO_EXTENSIONS") != "1":
        from kop_fast import codec
        if codec.IMPLEMENTATION != "cython":
            raise pytest.UsageError("the compiled kop_fast._codec was expected but did not load")


@pytest.fixture(scope="session")
def kop_server(tmp_path_factory):
    """One kop-fast on the embedded pulsar-lite, shared by the read-mostly interop tests."""
    server = KopServer(tmp_path_factory.mktemp("kop-shared") / "data")
    server.start()
    yield server
    server.stop()
