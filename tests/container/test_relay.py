"""The install container's relay (relay.py): its pumping between sockets, and the whole program run as
egress.relay_command runs it (`python3 -I -c <its text> SOCKET PORT COMMAND...`) against a local socket
standing in for the egress proxy."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading

from workbench.sandbox import container, egress
from workbench.sandbox.container import relay


def test_pump_copies_until_the_end_and_passes_the_end_on():
    source_near, source_far = socket.socketpair()
    sink_near, sink_far = socket.socketpair()
    payload = bytes(range(256)) * 1000  # more than a socket buffer holds: it must flow, not be copied at once

    def send():
        source_far.sendall(payload)
        source_far.shutdown(socket.SHUT_WR)

    threading.Thread(target=send, daemon=True).start()
    pumping = threading.Thread(target=relay.pump, args=(source_near, sink_near), daemon=True)
    pumping.start()
    received = b""
    sink_far.settimeout(5)
    while chunk := sink_far.recv(65536):
        received += chunk
    pumping.join(5)
    assert received == payload and not pumping.is_alive()  # the loop ended: the sink's sending side was shut


def echo_proxy(path):
    """A Unix-socket server that answers each connection with b"proxied:" + what it got."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(4)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.sendall(b"proxied:" + data)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CLIENT = textwrap.dedent("""
    import socket, sys, time
    for _ in range(100):
        try:
            conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
            break
        except OSError:
            time.sleep(0.05)
    conn.sendall(b"GET / HTTP/1.1")
    conn.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := conn.recv(65536):
        answer += chunk
    print(answer.decode())
    sys.exit(3)
""")


def run_relay(socket_path, port, command):
    argv = egress.relay_command(command)
    assert argv[:3] == [container.PYTHON, "-I", "-c"] and argv[3] == container.source("relay.py")
    argv = [sys.executable, "-I", "-c", argv[3], str(socket_path), str(port), *command]  # the host's python3
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_the_relay_hands_connections_to_the_proxy_and_passes_the_exit_status(tmp_path):
    proxy = echo_proxy(tmp_path / "proxy.sock")
    port = free_port()
    try:
        done = run_relay(tmp_path / "proxy.sock", port, [sys.executable, "-c", CLIENT, str(port)])
    finally:
        proxy.close()
    assert done.returncode == 3, done.stderr
    assert done.stdout == "proxied:GET / HTTP/1.1\n"


def test_without_the_proxy_it_says_so_once_and_the_command_still_runs(tmp_path):
    port = free_port()
    twice = f"import subprocess, sys\nfor _ in range(2): subprocess.run([sys.executable, '-c', {CLIENT!r}, '{port}'])"
    done = run_relay(tmp_path / "absent.sock", port, [sys.executable, "-c", twice])
    assert done.returncode == 0
    assert done.stderr.count("cannot reach Workbench's egress proxy") == 1, done.stderr
    assert "proxied" not in done.stdout  # each connection was closed without an answer
