"""Where installs fetch from ([install] settings): the plans the managers build, without an engine."""

from __future__ import annotations

import pytest

from workbench.config import Settings


def _settings(**install):
    return Settings(install=install)


def test_a_wheelhouse_alone_means_no_way_out(tmp_path):
    from workbench.sandbox.managers.pip import pip_plan

    plan = pip_plan(_settings(pip_find_links=str(tmp_path)))
    assert plan.egress == frozenset()
    assert "--no-index" in plan.options and plan.mounts[str(tmp_path)]["mode"] == "ro"


def test_a_file_index_means_no_way_out(tmp_path):
    from workbench.sandbox.managers.pip import pip_plan

    (tmp_path / "simple").mkdir()
    plan = pip_plan(_settings(pip_index_url=f"file://{tmp_path}/simple"))
    assert plan.egress == frozenset() and plan.mounts == {str(tmp_path): {"bind": str(tmp_path), "mode": "ro"}}


@pytest.mark.parametrize("url, reachable", [
    ("http://127.0.0.1:8000/simple", {"127.0.0.1:8000"}),
    ("http://10.1.2.3/simple", {"10.1.2.3:80"}),
    ("https://[::1]:8443/simple", {"[::1]:8443"}),
    ("https://Mirror.LAN./simple", {"mirror.lan:443"}),
    ("https://pypi.org/simple", {"pypi.org:443", "files.pythonhosted.org:443"}),
])
def test_an_index_url_opens_exactly_its_host_and_port(url, reachable):
    from workbench.sandbox.managers.pip import pip_plan

    plan = pip_plan(_settings(pip_index_url=url))
    assert {str(d) for d in plan.egress} == reachable
    assert plan.options[-2:] == ["--index-url", url]


def test_without_sources_pip_reaches_pypi_only(monkeypatch, tmp_path):
    from workbench.sandbox.managers.pip import pip_plan

    monkeypatch.setenv("HOME", str(tmp_path))  # no user pip.conf
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("os.path.exists", lambda path: False)  # nor /etc/pip.conf
    plan = pip_plan(_settings())
    assert {str(d) for d in plan.egress} == {"pypi.org:443", "files.pythonhosted.org:443"}


def test_allow_hosts_adds_places_only_when_there_is_a_way_out(tmp_path):
    from workbench.sandbox.managers.pip import pip_plan

    settings = _settings(pip_index_url="http://mirror.lan:3141/root/pypi/+simple/",
                         allow_hosts="files.mirror.lan cdn.lan:8443 https://x.lan:9/a")
    assert {str(d) for d in pip_plan(settings).egress} == {
        "mirror.lan:3141", "files.mirror.lan:443", "files.mirror.lan:80", "cdn.lan:8443", "x.lan:9"}
    settings = _settings(pip_find_links=str(tmp_path), allow_hosts="files.mirror.lan")
    assert pip_plan(settings).egress == frozenset()  # folders only: still nothing at all


@pytest.mark.parametrize("bad", ["host:port", "host:0", "host:99999", "http://", ":80"])
def test_a_malformed_allow_hosts_entry_is_a_config_error(bad):
    from workbench.errors import ConfigError
    from workbench.sandbox.managers.pip import pip_plan

    with pytest.raises(ConfigError, match="allow_hosts"):
        pip_plan(_settings(pip_index_url="https://pypi.org/simple", allow_hosts=bad))


@pytest.mark.parametrize("text, urls", [
    ("deb http://deb.debian.org/debian bookworm main\n# deb http://old.example/ x\n",
     ["http://deb.debian.org/debian"]),
    ("deb [arch=amd64 signed-by=/k.gpg] https://m.lan/debian bookworm main\ndeb file:/mnt/x ./\n",
     ["https://m.lan/debian"]),
    ("Types: deb\nURIs: http://a.lan/debian http://b.lan/debian\nSuites: bookworm\n",
     ["http://a.lan/debian", "http://b.lan/debian"]),
    ("deb http://one.lan/debian bookworm main\n\nTypes: deb\nURIs: http://off.lan/debian\nSuites: bookworm\n"
     "Enabled: no\n\nTypes: deb\n# URIs: http://comment.lan/\nURIs: https://two.lan/debian\nSuites: bookworm\n",
     ["http://one.lan/debian", "https://two.lan/debian"]),  # a disabled stanza opens nothing
])
def test_apt_sources_of_the_image_are_read(text, urls):
    from workbench.sandbox.image import _mirror_from
    from workbench.sandbox.managers.apt import apt_source_urls

    assert apt_source_urls(text) == urls
    assert _mirror_from(text) == urls[0]  # the image build picks the first bookworm deb source


def _sources_line(command):
    script = command[2]
    return script, command[4:]


def test_an_apt_mirror_url_is_the_only_source(tmp_path):
    from workbench.sandbox.managers.apt import apt_plan

    command, mounts, network = apt_plan(_settings(apt_mirror="http://mirror.lan/debian/"), ["jq"])
    script, args = _sources_line(command)
    assert args == ["http://mirror.lan/debian"]  # the mirror travels as $1, never inside the script
    assert 'echo "deb $1 $VERSION_CODENAME main" > /tmp/apt/sources.list' in script
    # Every apt-get reads only that list: the image's sources.list and sources.list.d are replaced.
    for call in script.split("; "):
        if call.startswith("apt-get") and "clean" not in call:
            assert "-o Dir::Etc::SourceList=/tmp/apt/sources.list" in call
            assert "-o Dir::Etc::SourceParts=/tmp/apt/parts" in call
            assert "-o APT::Update::Error-Mode=any" in call
    assert "deb.debian.org" not in script and "http" not in script
    assert {str(d) for d in network} == {"mirror.lan:80"} and mounts == {}


def test_an_apt_mirror_folder_is_mounted_read_only_without_network(tmp_path):
    from workbench.sandbox.managers.apt import APT_MOUNT, apt_plan

    (tmp_path / "Packages").write_text("")
    command, mounts, network = apt_plan(_settings(apt_mirror=f"file://{tmp_path}"), ["wb-hello"])
    script, args = _sources_line(command)
    assert network == frozenset() and mounts == {str(tmp_path): {"bind": APT_MOUNT, "mode": "ro"}}
    assert args == [f"file:{APT_MOUNT}"] and '"deb [trusted=yes] $1 ./"' in script  # flat, the user's own
    (tmp_path / "dists").mkdir()
    command, _, _ = apt_plan(_settings(apt_mirror=str(tmp_path)), ["wb-hello"])
    assert '"deb $1 $VERSION_CODENAME main"' in command[2]  # a mirror copy: its Release stays signed


def test_without_a_mirror_apt_uses_the_image_sources():
    from workbench.sandbox.managers.apt import apt_plan

    command, mounts, network = apt_plan(_settings(), ["jq"], ["http://deb.debian.org/debian"])
    assert "SourceList" not in command[2] and len(command) == 4
    assert {str(d) for d in network} == {"deb.debian.org:80"}


def test_a_cran_folder_is_mounted_read_only_without_network(tmp_path):
    from workbench.sandbox.managers.r import r_plan

    for repo in (str(tmp_path), f"file://{tmp_path}/"):
        script, mounts, network = r_plan(_settings(cran_repo=repo), ["wbhello"])
        assert network == frozenset() and mounts == {str(tmp_path): {"bind": str(tmp_path), "mode": "ro"}}
        assert f'repos = "file://{tmp_path}"' in script
    script, mounts, network = r_plan(_settings(), ["data.table"])
    assert {str(d) for d in network} == {"cloud.r-project.org:443"} and mounts == {}
    assert "cloud.r-project.org" in script


@pytest.mark.parametrize("install, manager, words", [
    ({"pip_find_links": "/no/such/wheelhouse"}, "pip", "pip wheelhouse /no/such/wheelhouse: folder missing"),
    ({"pip_index_url": "file:///no/such/simple"}, "pip", "pip index file:///no/such/simple: folder missing"),
    ({"cran_repo": "/no/such/cran"}, "r", "CRAN repository /no/such/cran: folder missing"),
    ({"apt_mirror": "http://127.0.0.1:9/debian"}, "apt", "apt mirror http://127.0.0.1:9/debian: unreachable"),
    ({"cran_repo": "http://localhost:9/cran"}, "r", "CRAN repository http://localhost:9/cran: unreachable"),
])
def test_missing_or_unreachable_sources_stop_with_exit_5(install, manager, words):
    from workbench.sandbox.errors import SourceUnreachable
    from workbench.sandbox.install import check_sources

    with pytest.raises(SourceUnreachable) as caught:
        check_sources(_settings(**install), manager)
    assert words in caught.value.one_line() and caught.value.exit_code == 5
    assert "\n" not in caught.value.one_line()


def test_a_silent_index_stops_with_exit_5():
    from tests.sandbox.repos import free_port
    from workbench.sandbox.errors import SourceUnreachable
    from workbench.sandbox.install import check_sources

    url = f"http://127.0.0.1:{free_port()}/simple"
    with pytest.raises(SourceUnreachable, match="unreachable"):
        check_sources(_settings(pip_index_url=url), "pip")


def test_sources_of_other_managers_are_not_checked():
    from workbench.sandbox.install import check_sources

    check_sources(_settings(apt_mirror="/no/such/mirror"), "pip")


@pytest.mark.parametrize("bad", ["http://mirror lan/debian", "mirror.lan/debian", "http://x/$(reboot)'"])
def test_a_malformed_source_is_a_config_error(bad):
    from workbench.errors import ConfigError
    from workbench.sandbox.install import check_sources

    with pytest.raises(ConfigError):
        check_sources(_settings(apt_mirror=bad), "apt")


def test_doctor_says_what_the_install_step_does(tmp_path):
    """The doctor's finding for a source and the install step's refusal use the same words."""
    from workbench.sandbox.errors import SourceUnreachable
    from workbench.sandbox.install import check_sources
    from workbench.sandbox.managers import check as check_install_sources

    for install, manager in (({"apt_mirror": "http://127.0.0.1:9/debian"}, "apt"),
                             ({"pip_find_links": str(tmp_path / "gone")}, "pip")):
        settings = _settings(**install)
        finding = check_install_sources(settings)[0]
        assert finding.status == "warn"
        with pytest.raises(SourceUnreachable) as caught:
            check_sources(settings, manager)
        assert finding.detail in caught.value.one_line()
    (tmp_path / "here").mkdir()
    source, egress = check_install_sources(_settings(pip_find_links=str(tmp_path / "here")))
    assert source.status == "ok"
    assert egress.name == "install egress" and "pip nothing (local folders only)" in egress.detail
    check_sources(_settings(pip_find_links=str(tmp_path / "here")), "pip")


def test_an_install_log_keeps_its_start_and_its_end_whatever_its_size():
    from workbench.sandbox.managers.output import KeptOutput

    kept = KeptOutput(cap=100)
    kept.add(b"S" * 60)
    for _ in range(10_000):
        kept.add(b"m" * 1000)  # 10 MB of middle
    kept.add(b"\n@@end@@ wbdemo-a 1.0\n")
    text = kept.text()
    assert text.startswith("S" * 60 + "m" * 40)
    assert text.endswith("\n@@end@@ wbdemo-a 1.0\n") and len(text) < 300
    assert f"[... {10_000_082 - 200:,} bytes of output not kept ...]" in text
    assert len(kept.tail) <= 200  # memory stays bounded while it runs
    small = KeptOutput(cap=100)
    small.add(b"short\xff")
    assert small.text() == "short\ufffd"


def test_where_each_manager_may_reach_in_words(tmp_path):
    from workbench.cli.agent_cmd import install_reach
    from workbench.sandbox.install import reachable

    settings = _settings(pip_index_url="http://127.0.0.1:3141/simple", cran_repo=str(tmp_path),
                         allow_hosts="files.lan")
    assert reachable(settings, "pip") == "127.0.0.1:3141, files.lan:80, files.lan:443"
    assert reachable(settings, "r") == "nothing (local folders only)"  # a folder: not even allow_hosts
    assert reachable(settings, "apt") == "the image's apt sources and files.lan:80, files.lan:443"
    assert reachable(_settings(apt_mirror="https://deb.lan/debian"), "apt") == "deb.lan:443"
    assert "allow_hosts" in install_reach(_settings(pip_index_url="https://x.lan/", allow_hosts="x:y"), "pip")


def test_credentials_in_a_source_url_are_never_printed():
    from workbench.sandbox.errors import SourceUnreachable
    from workbench.sandbox.install import check_sources
    from workbench.sandbox.managers import check as check_install_sources
    from workbench.sandbox.managers.sources import shown

    assert shown("https://ana:s3cret@mirror.lan/simple") == "https://***@mirror.lan/simple"
    assert shown("https://mirror.lan/simple") == "https://mirror.lan/simple" and shown("/srv/w") == "/srv/w"
    from tests.sandbox.repos import free_port

    settings = _settings(pip_index_url=f"http://ana:s3cret@127.0.0.1:{free_port()}/simple")
    with pytest.raises(SourceUnreachable) as caught:
        check_sources(settings, "pip")
    assert "s3cret" not in caught.value.one_line() and "***@127.0.0.1" in caught.value.one_line()
    assert all("s3cret" not in f.detail for f in check_install_sources(settings))
