"""Fixtures serving the project's gRPC server in-process: `start_server`, `served`, `raw`.

A test module loads them with ``pytest_plugins = ["harness.grpc_fixtures"]``.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator

import pytest

from tfprovider_immuta_pg.protocol.grpc_server import GrpcServer

from .grpc_served import Handlers, Served
from .raw_http2 import RawClient


@pytest.fixture
def start_server() -> Iterator[Callable[..., Served]]:
    """Starts GrpcServers on fresh unix sockets; stops them all after the test."""
    started: list[tuple[Served, str]] = []

    def start(**kwargs: object) -> Served:
        folder = tempfile.mkdtemp(dir="/tmp", prefix="grpcsrv")
        path = os.path.join(folder, "s.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(64)
        handlers = Handlers()
        logs: list[tuple[tuple, dict]] = []
        server = GrpcServer(
            listener, handlers.route, log=lambda *a, **k: logs.append((a, k)), **kwargs
        )
        served = Served(server, path, handlers, logs)
        started.append((served, folder))
        server.start()
        return served

    yield start
    for served, folder in started:
        served.handlers.close()
        served.server.stop(grace=0)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def served(start_server: Callable[..., Served]) -> Served:
    return start_server()


@pytest.fixture
def raw(served: Served) -> Iterator[RawClient]:
    client = RawClient(served.path)
    client.start()
    yield client
    client.close()
