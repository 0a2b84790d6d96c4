"""The chaos harness's TCP proxy: forwards, then refuses and resets on cut, then forwards again."""

from __future__ import annotations

import socket
import threading

import pytest

from evmonitor.stack.faultproxy import FaultProxy


@pytest.fixture
def echo_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def echo(conn: socket.socket) -> None:
        try:
            for data in iter(lambda: conn.recv(1024), b""):
                conn.sendall(data)
        except ConnectionResetError:
            pass  # the proxy resets its upstream connections on cut(): what the test does
        finally:
            conn.close()

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()
    server.close()


def roundtrip(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload)
        return s.recv(1024)


def test_forwards_refuses_when_cut_and_forwards_again_after_restore(echo_server):
    """cut() refuses new connections and resets open ones; restore() brings the same port back."""
    proxy = FaultProxy(echo_server)
    try:
        assert roundtrip(proxy.port) == b"ping"
        open_conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        open_conn.sendall(b"a")
        assert open_conn.recv(10) == b"a"
        proxy.cut()
        with pytest.raises(ConnectionRefusedError):
            roundtrip(proxy.port)
        with pytest.raises(OSError):
            open_conn.sendall(b"b")
            if not open_conn.recv(10):
                raise ConnectionResetError("closed")
        proxy.restore()
        assert roundtrip(proxy.port, b"pong") == b"pong"
    finally:
        proxy.close()
