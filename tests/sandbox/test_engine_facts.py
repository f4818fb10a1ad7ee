"""The engine's self-description is reused for a while by later processes (Podman's `info` costs ~0.18 s),
only for the same local socket, only while recent, never by doctor, and a dead engine is still caught."""

from __future__ import annotations

import json
import socket

import pytest

from workbench.sandbox import engine_facts

FACTS = ("podman 4.3.1", True, False, True, False)


@pytest.fixture
def sock(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "engine.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    yield path, listener
    listener.close()


def test_a_description_is_reused_while_recent_and_for_the_same_socket(sock):
    path, listener = sock
    endpoint = f"unix://{path}"
    assert engine_facts.cached(endpoint) is None
    engine_facts.store(endpoint, FACTS, now=1000.0)
    assert engine_facts.cached(endpoint, now=1000.0 + engine_facts.TTL - 1) == FACTS
    assert engine_facts.cached(endpoint, now=1000.0 + engine_facts.TTL + 1) is None  # too old
    assert engine_facts.cached(endpoint, now=999.0 - 1) is None  # a clock that went back: not trusted
    listener.close()
    path.unlink()
    again = socket.socket(socket.AF_UNIX)
    again.bind(str(path))  # a restarted engine makes a new socket: a new key
    try:
        assert engine_facts.cached(endpoint, now=1001.0) is None
    finally:
        again.close()


def test_remote_endpoints_and_a_broken_cache_mean_asking_the_engine(sock, tmp_path):
    path, _ = sock
    engine_facts.store("tcp://10.0.0.5:2375", FACTS)
    assert engine_facts.cached("tcp://10.0.0.5:2375") is None
    cache = tmp_path / "cache" / "engine-facts.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    for broken in ("not json", json.dumps([1, 2]), json.dumps({f"unix://{path}": {"at": "x"}})):
        cache.write_text(broken)
        assert engine_facts.cached(f"unix://{path}") is None
    engine_facts.store(f"unix://{path}", FACTS)  # and storing over a broken file works
    assert engine_facts.cached(f"unix://{path}") == FACTS


@pytest.mark.engine
def test_a_second_connect_only_pings_and_doctor_asks_afresh(engine_ready, tmp_path, monkeypatch):
    from workbench.config import Settings
    from workbench.sandbox import engine as engine_module

    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    asked: list[str] = []
    real_get = None

    def counting(self, url, *args, **kwargs):
        asked.append(url.rsplit("/", 1)[-1])
        return real_get(self, url, *args, **kwargs)

    import docker

    real_get = docker.APIClient.get
    monkeypatch.setattr(docker.APIClient, "get", counting)
    first = engine_module.connect(Settings())
    first.close()
    second = engine_module.connect(Settings())
    second.close()
    assert asked == ["info", "_ping"]
    assert (second.version, second.rootless, second.limits_enforced) == \
        (first.version, first.rootless, first.limits_enforced)
    asked.clear()
    probe = engine_module.probe(Settings())
    assert probe.reachable and asked == ["info"]  # doctor never trusts the cache


def test_a_dead_engine_is_still_caught_with_a_description_cached(sock, monkeypatch):
    from workbench.config import Settings
    from workbench.errors import EngineUnavailable
    from workbench.sandbox.engine import connect

    path, _ = sock  # bound, but nothing answers on it
    engine_facts.store(f"unix://{path}", FACTS)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    with pytest.raises(EngineUnavailable) as caught:
        connect(Settings())
    assert "does not answer" in caught.value.one_line() and caught.value.exit_code == 3


def test_an_older_cache_layout_is_asked_afresh(sock, tmp_path):
    path, _ = sock
    cache = tmp_path / "cache" / "engine-facts.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    key = engine_facts._key(f"unix://{path}")
    cache.write_text(json.dumps({key: {"at": __import__("time").time(), "facts": ["podman 4.3.1", True, False, True]}}))
    assert engine_facts.cached(f"unix://{path}") is None


def test_on_selinux_hosts_our_folders_are_relabeled_and_system_paths_are_not():
    from workbench.sandbox.engine import DockerEngine, selinux_binds
    from workbench.sandbox.spec import ContainerSpec, Mount

    binds = {"/home/ana/proj/workspace": {"bind": "/workspace", "mode": "rw"},
             "/tmp/workbench-egress-x1": {"bind": "/mnt/workbench-egress", "mode": "rw"},
             "/srv/wheelhouse": {"bind": "/srv/wheelhouse", "mode": "ro"},
             "/etc/ssl/certs/ca-certificates.crt": {"bind": "/etc/ssl/certs/ca-certificates.crt", "mode": "ro"},
             "/data/already": {"bind": "/x", "mode": "ro,z"}}
    modes = {host: b["mode"] for host, b in selinux_binds(binds).items()}
    assert modes == {"/home/ana/proj/workspace": "rw,z", "/tmp/workbench-egress-x1": "rw,z",
                     "/srv/wheelhouse": "ro,z", "/etc/ssl/certs/ca-certificates.crt": "ro", "/data/already": "ro,z"}

    class Api:  # what docker-py is handed, captured
        def create_host_config(self, **options):
            self.options = options
            return {}

        def create_container(self, host_config, **spec):
            return {"Id": "c1"}

    for selinux, expected in ((True, "rw,z"), (False, "rw")):
        engine = DockerEngine.__new__(DockerEngine)
        engine.api, engine.selinux, engine.is_podman, engine.endpoint = Api(), selinux, True, "unix:///run/x.sock"
        engine.create_container(ContainerSpec("i", mounts=(Mount("/p/ws", "/workspace"),)))
        assert engine.api.options["binds"]["/p/ws"]["mode"] == expected
