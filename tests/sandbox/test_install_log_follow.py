"""An install container's output when the engine never ends a followed log of a container that exited
(Podman does so now and then): the install still ends, with every byte, once the container has."""

import threading

from workbench.sandbox.managers import install_container
from workbench.sandbox.managers.output import OUTPUT_CAP, KeptOutput, LineSplitter


class StuckStream:
    """A followed log that sends its first chunk and then waits until it is closed (docker-py's streams
    have close(), which shuts their socket)."""

    def __init__(self, release):
        self.release, self.sent, self.closed = release, False, False

    def __iter__(self):
        return self

    def __next__(self):
        if not self.sent:
            self.sent = True
            return b"first line\n"
        self.release.wait(30)  # stuck, as Podman's stream was
        raise OSError("the stream was closed")

    def close(self):
        self.closed = True
        self.release.set()


class HangingLogs:
    """The engine's side of that: the followed log sends its first chunk, then nothing, ever."""

    def __init__(self):
        self.release = threading.Event()

    def logs(self, container, follow=True):
        if not follow:
            return iter([b"first line\nsecond line\n"])
        return self._follow()

    def _follow(self):
        self.stream = StuckStream(self.release)
        return self.stream

    def wait(self, container, timeout=None):
        return 0


def test_a_followed_log_that_never_ends_is_read_whole_once_the_container_exited(monkeypatch):
    monkeypatch.setattr(install_container, "LOG_GRACE", 0.2)
    engine = HangingLogs()
    output, seen = KeptOutput(OUTPUT_CAP), []
    lines = LineSplitter(seen.append)
    try:
        code = install_container.follow_to_the_end(engine, "c1", output, lines)
    finally:
        engine.release.set()
    assert code == 0
    assert engine.stream.closed  # the waiting thread closed the stuck stream
    assert output.text() == "first line\nsecond line\n"  # nothing twice, nothing lost
    assert seen == ["first line", "second line"]
