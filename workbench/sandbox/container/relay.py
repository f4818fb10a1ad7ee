"""The install container's way out: a relay from its own loopback to Workbench's egress proxy socket.

Runs in the install container only, as its first process: the image's own interpreter with this file's
text, `/usr/bin/python3 -I -c <this file> SOCKET PORT COMMAND...` (workbench.sandbox.egress.relay_command),
so nothing under /workspace is imported. It listens on 127.0.0.1:PORT, hands each connection to the proxy's
Unix socket SOCKET (bind-mounted from the host: see workbench.sandbox.egress), runs COMMAND (the install)
and exits with its status, passing on the signals it gets. Standard library only (the image's python3).
"""

import signal
import socket
import subprocess
import sys
import threading

warned = []


def pump(source, sink):
    """Copy bytes from `source` to `sink` until `source` ends; then end `sink`'s sending side."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    try:
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def bridge(client, path):
    """One connection: both directions between `client` and a fresh connection to the proxy at `path`."""
    proxy = socket.socket(socket.AF_UNIX)
    try:
        proxy.connect(path)
    except OSError as exc:
        if not warned:
            warned.append(1)
            print(f"workbench: the install cannot reach Workbench's egress proxy ({exc}); an engine in another "
                  "machine or VM cannot share it: use folder sources there", file=sys.stderr, flush=True)
        client.close()
        proxy.close()
        return
    back = threading.Thread(target=pump, args=(proxy, client), daemon=True)
    back.start()
    pump(client, proxy)
    back.join()
    client.close()
    proxy.close()


def serve(listener, path):
    while True:
        client, _ = listener.accept()
        threading.Thread(target=bridge, args=(client, path), daemon=True).start()


def listen(port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    return listener


def main(argv):
    path, port, command = argv[0], int(argv[1]), argv[2:]
    threading.Thread(target=serve, args=(listen(port), path), daemon=True).start()
    child = subprocess.Popen(command)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda signum, frame: child.send_signal(signum))
    status = child.wait()
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
