"""The per-project sandbox service: a long-lived process that keeps the project's engine connection and a
running one-off container, so `workbench exec` from a shell costs an exec, not a container's life.

    wire.py      what client and service share: frames, the private runtime folder, who may talk
    client.py    the command line's thin path (standard library only: it runs before click is imported)
    execute.py   one `workbench exec`, the same code in-process and in the service
    pool.py      the service's idle one-off container, reused across calls when nothing changed
    server.py    the service itself: the socket, one thread per call, staleness, the idle timeout

Nothing is imported here: the client must stay light.
"""
