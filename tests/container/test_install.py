"""How the container-side files reach a container: copied into the project's code folder (read-only at
/opt/workbench) keeping their layout, replaced only when they differ, never written through a planted link;
a digest over them names the session container's spec."""

from __future__ import annotations

import shutil
import stat

from workbench.sandbox import container


def test_every_runner_file_is_installed_readable_with_its_layout(installed):
    for name in container.RUNNER_FILES:
        path = installed / name
        assert path.read_bytes() == container.source_bytes(name)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE((installed / "kernels").stat().st_mode) == 0o755
    assert not [p for p in installed.rglob(".*")]  # no temporary files left


def test_links_and_stale_files_in_the_code_folder_are_replaced_not_followed(installed, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "python.py").write_text("keep me")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    shutil.rmtree(installed / "kernels")
    (installed / "kernels").symlink_to(outside)  # what a received project could carry
    (installed / "runner.py").unlink()
    (installed / "runner.py").symlink_to(victim)
    (installed / "protocol.py").write_text("stale")
    container.install(installed)
    assert (installed / "kernels").is_dir() and not (installed / "kernels").is_symlink()
    assert not (installed / "runner.py").is_symlink()
    assert (installed / "protocol.py").read_bytes() == container.source_bytes("protocol.py")
    assert (outside / "python.py").read_text() == "keep me" and victim.read_text() == "precious"


def test_the_digest_covers_the_runners_files():
    digest = container.digest()
    assert len(digest) == 64 and digest == container.digest()
    container.source_bytes.cache_clear()
    original = container.source_bytes

    def changed(name):
        data = original(name)
        return data + b"\n# changed" if name == "kernels/python.py" else data

    try:
        container.source_bytes = changed
        assert container.digest() != digest
    finally:
        container.source_bytes = original
