"""Where installs fetch from ([install] settings): the plans install.py builds, without an engine."""

from __future__ import annotations

import pytest

from workbench.config import Settings


def _settings(**install):
    return Settings(install=install)


@pytest.mark.parametrize("url, loopback", [
    ("http://127.0.0.1:8000/simple", True), ("http://127.9.9.9/simple", True), ("http://localhost:3141/", True),
    ("https://[::1]:8443/simple", True), ("http://10.0.0.5/simple", False), ("https://pypi.org/simple", False),
    ("file:///srv/simple", False), ("/srv/wheels", False), ("http://localhost.example.com/", False)])
def test_loopback_urls_are_recognised(url, loopback):
    from workbench.sandbox.install import is_loopback

    assert is_loopback(url) is loopback


def test_a_wheelhouse_alone_means_no_network(tmp_path):
    from workbench.sandbox.install import pip_plan

    plan = pip_plan(_settings(pip_find_links=str(tmp_path)))
    assert not plan.network and plan.host_sources is None
    assert "--no-index" in plan.options and plan.mounts[str(tmp_path)]["mode"] == "ro"


def test_a_loopback_index_is_resolved_on_the_host_and_the_container_gets_no_network():
    from workbench.sandbox.install import WHEELS_MOUNT, pip_plan

    plan = pip_plan(_settings(pip_index_url="http://127.0.0.1:8000/simple"))
    assert plan.network is False
    assert plan.options == ["--no-index", "--find-links", WHEELS_MOUNT]  # only the host-made wheelhouse
    assert plan.host_sources == ["--index-url", "http://127.0.0.1:8000/simple"]


def test_a_loopback_index_with_a_wheelhouse_consults_both_on_the_host(tmp_path):
    from workbench.sandbox.install import pip_plan

    plan = pip_plan(_settings(pip_index_url="http://localhost:8000/simple", pip_find_links=str(tmp_path)))
    assert plan.network is False and plan.mounts == {}
    assert plan.host_sources == ["--index-url", "http://localhost:8000/simple", "--find-links", str(tmp_path)]


def test_a_lan_index_needs_the_install_network():
    from workbench.sandbox.install import pip_plan

    plan = pip_plan(_settings(pip_index_url="http://10.1.2.3/simple"))
    assert plan.network is True and plan.host_sources is None
    assert plan.options[-2:] == ["--index-url", "http://10.1.2.3/simple"]


def test_the_host_download_takes_wheels_only_for_the_sandbox_interpreter():
    from workbench.sandbox.install import host_download_command

    command = host_download_command(["--index-url", "http://127.0.0.1:1/simple"],
                                    ["--python-version", "3.11", "--platform", "any"], ["six"], "/tmp/x")
    assert command[1:4] == ["-m", "pip", "download"]
    assert "--only-binary=:all:" in command  # no sdist: no build script runs on the host
    assert command[command.index("--dest") + 1] == "/tmp/x" and command[-1] == "six"


def _sources_line(command):
    script = command[2]
    return script, command[4:]


def test_an_apt_mirror_url_is_the_only_source(tmp_path):
    from workbench.sandbox.install import apt_plan

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
    assert network is True and mounts == {}


def test_an_apt_mirror_folder_is_mounted_read_only_without_network(tmp_path):
    from workbench.sandbox.install import APT_MOUNT, apt_plan

    (tmp_path / "Packages").write_text("")
    command, mounts, network = apt_plan(_settings(apt_mirror=f"file://{tmp_path}"), ["wb-hello"])
    script, args = _sources_line(command)
    assert network is False and mounts == {str(tmp_path): {"bind": APT_MOUNT, "mode": "ro"}}
    assert args == [f"file:{APT_MOUNT}"] and '"deb [trusted=yes] $1 ./"' in script  # flat, the user's own
    (tmp_path / "dists").mkdir()
    command, _, _ = apt_plan(_settings(apt_mirror=str(tmp_path)), ["wb-hello"])
    assert '"deb $1 $VERSION_CODENAME main"' in command[2]  # a mirror copy: its Release stays signed


def test_without_a_mirror_apt_uses_the_image_sources():
    from workbench.sandbox.install import apt_plan

    command, mounts, network = apt_plan(_settings(), ["jq"])
    assert "SourceList" not in command[2] and network is True and len(command) == 4


def test_a_cran_folder_is_mounted_read_only_without_network(tmp_path):
    from workbench.sandbox.install import r_plan

    for repo in (str(tmp_path), f"file://{tmp_path}/"):
        script, mounts, network = r_plan(_settings(cran_repo=repo), ["wbhello"])
        assert network is False and mounts == {str(tmp_path): {"bind": str(tmp_path), "mode": "ro"}}
        assert f'repos = "file://{tmp_path}"' in script
    script, mounts, network = r_plan(_settings(), ["data.table"])
    assert network is True and mounts == {} and "cloud.r-project.org" in script


@pytest.mark.parametrize("install, manager, words", [
    ({"pip_find_links": "/no/such/wheelhouse"}, "pip", "pip wheelhouse /no/such/wheelhouse: folder missing"),
    ({"pip_index_url": "file:///no/such/simple"}, "pip", "pip index file:///no/such/simple: folder missing"),
    ({"cran_repo": "/no/such/cran"}, "r", "CRAN repository /no/such/cran: folder missing"),
    ({"apt_mirror": "http://127.0.0.1:9/debian"}, "apt", "loopback"),
    ({"cran_repo": "http://localhost:9/cran"}, "r", "loopback"),
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
    from workbench.doctor import check_install_sources
    from workbench.sandbox.errors import SourceUnreachable
    from workbench.sandbox.install import check_sources

    for install, manager in (({"apt_mirror": "http://127.0.0.1:9/debian"}, "apt"),
                             ({"pip_find_links": str(tmp_path / "gone")}, "pip")):
        settings = _settings(**install)
        (finding,) = check_install_sources(settings)
        assert finding.status == "warn"
        with pytest.raises(SourceUnreachable) as caught:
            check_sources(settings, manager)
        assert finding.detail in caught.value.one_line()
    (tmp_path / "here").mkdir()
    (finding,) = check_install_sources(_settings(pip_find_links=str(tmp_path / "here")))
    assert finding.status == "ok"
    check_sources(_settings(pip_find_links=str(tmp_path / "here")), "pip")
