"""The Files pane against a workspace sandboxed code has booby-trapped (marked `engine`: the traps are planted
by code in a real sandbox, then the pane is driven with the Pilot).

The pane reads only through `workbench.confined`: a symlink is shown as one and never followed (not in the
preview, not in the tree, not by ctrl+o's $EDITOR), a FIFO or a link to /dev/zero never hangs it, a sparse
file is read up to the preview cap only, and a folder swapped for a symlink after it was listed is not
entered. Each test checks that no host file's content was shown, that nothing hung (bounded timeouts), and
that the sandbox still runs code afterwards.
"""

from __future__ import annotations

import secrets
import stat
import textwrap

import pytest

from tests.sandbox.conftest import make_settings, run, still_works
from workbench.config import Settings

from .conftest import SIZE, aio, settle
from .fakes import FakeServices

pytestmark = [pytest.mark.engine, pytest.mark.timeout(240)]

SPARSE = 1 << 30  # 1 GiB of holes


@pytest.fixture
def trapped(engine_ready, demo, tmp_path):
    """A workspace holding a symlink to a host secret, a link to /dev/zero, a FIFO, a symlinked host folder,
    a 1 GiB sparse file and a plain file, all made by code in the sandbox. Yields (sandbox, host paths)."""
    from workbench.sandbox import Sandbox

    secret = tmp_path / "host-secret.txt"
    secret.write_text(f"CANARY-{secrets.token_hex(8)}\n")
    host_dir = tmp_path / "host-folder"
    host_dir.mkdir()
    (host_dir / "host-only.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (host_dir / "host-only.txt").write_text("host folder content\n")
    box = Sandbox.open(demo, settings=make_settings(timeout=30))
    result, _ = run(box, "shell", textwrap.dedent(f"""\
        set -e
        cd /workspace
        ln -s {secret} secret.txt
        ln -s /dev/zero zero.txt
        mkfifo pipe.txt
        ln -s {host_dir} linked
        truncate -s {SPARSE} sparse.txt
        head -c 8192 /dev/zero | tr '\\0' a > sparse-text.txt && truncate -s {SPARSE} sparse-text.txt
        echo hello > plain.txt
        mkdir sub && echo inside > sub/inside.txt
        """))
    assert result.ok, result
    kinds = {p.name: stat.S_IFMT(p.lstat().st_mode) for p in demo.workspace.iterdir()}
    assert kinds["secret.txt"] == stat.S_IFLNK and kinds["pipe.txt"] == stat.S_IFIFO  # planted as meant
    yield box, {"secret": secret, "host_dir": host_dir}
    still_works(box)
    box.close()


def node(tree, label_start: str):
    """The top-level node whose label starts so (None while a reload has it away)."""
    return next((n for n in tree.root.children if n.label.plain.startswith(label_start)), None)


async def preview_of(pilot, name: str) -> str:
    app = pilot.app
    tree = app.screen.query_one("#files-tree")
    preview = app.screen.query_one("#preview-text")
    panel = app.screen.query_one("#files")
    panel.border_subtitle = None
    tree.select_node(node(tree, name))
    await settle(pilot, lambda: panel.border_subtitle == name, timeout=10)  # set with the preview shown
    return str(preview.render())


@aio
async def test_preview_never_follows_a_symlink_nor_hangs_on_a_fifo_or_dev_zero(make, demo, trapped):
    from workbench.tui.widgets.files_panel import PREVIEW_BYTES, read_preview

    _box, host = trapped
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        tree = app.screen.query_one("#files-tree")
        await settle(pilot, lambda: len(tree.root.children) >= 7)
        secret = await preview_of(pilot, "secret.txt")
        assert secret == f"secret.txt is a symlink to {host['secret']}: not followed"
        assert "CANARY" not in secret
        assert await preview_of(pilot, "zero.txt") == "zero.txt is a symlink to /dev/zero: not followed"
        assert await preview_of(pilot, "pipe.txt") == "pipe.txt is a FIFO: not opened"
        assert await preview_of(pilot, "sparse.txt") == f"sparse.txt: binary file, {SPARSE:,} bytes"
        assert f"first 65,536 of {SPARSE:,} bytes" in await preview_of(pilot, "sparse-text.txt")
        ready = read_preview(demo.workspace, demo.workspace / "sparse-text.txt")
        assert ready.text.startswith("a" * 8192) and len(ready.text) < PREVIEW_BYTES + 100  # the cap, not 1 GiB
        assert "hello" in await preview_of(pilot, "plain.txt")  # a regular file still previews
        await app.action_quit()


@aio
async def test_the_tree_shows_symlinks_as_symlinks_and_never_enters_a_symlinked_folder(make, trapped):
    box, host = trapped
    app = make()
    async with app.run_test(size=SIZE) as pilot:
        tree = app.screen.query_one("#files-tree")
        await settle(pilot, lambda: len(tree.root.children) >= 7)
        linked = node(tree, "linked")
        assert linked.label.plain == f"linked → {host['host_dir']}"
        assert not linked.allow_expand and linked.data.kind == "symlink"
        assert node(tree, "pipe.txt").label.plain == "pipe.txt (fifo)"
        tree.select_node(linked)
        await pilot.pause(0.3)
        assert not linked.children

        sub = node(tree, "sub")
        sub.expand()
        await settle(pilot, lambda: [c.label.plain for c in sub.children] == ["inside.txt"])
        # The folder is swapped for a symlink to a host folder after the tree listed it, then reloaded.
        result, _ = run(box, "shell", f"cd /workspace && rm -rf sub && ln -s {host['host_dir']} sub")
        assert result.ok, result
        await settle(pilot, lambda: node(tree, "sub →") is not None, timeout=10)
        names = [n.label.plain for n in tree.root.children] + [c.label.plain for n in tree.root.children
                                                               for c in n.children]
        assert not any("host-only" in name for name in names), names
        artifacts = str(app.screen.query_one("#files-artifacts").render())
        assert "host-only" not in artifacts  # the artifacts scan walks by fd too
        await app.action_quit()


@aio
async def test_ctrl_o_refuses_symlinks_and_special_files(demo, trapped, tmp_path, monkeypatch):
    from textual.widgets._toast import Toast

    from workbench.tui.app import make_app
    from workbench.tui.widgets.files_panel import FilesPanel

    _box, host = trapped
    opened = tmp_path / "editor-was-run"
    editor = tmp_path / "editor.sh"
    editor.write_text(f"#!/bin/sh\necho \"$@\" >> {opened}\n")
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    monkeypatch.delenv("VISUAL", raising=False)
    app = make_app(demo, services=FakeServices(), settings=Settings(), persist_theme=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        tree = app.screen.query_one("#files-tree")
        await settle(pilot, lambda: len(tree.root.children) >= 7)
        expected = {"secret.txt": f"secret.txt is a symlink to {host['secret']}: not opened in $EDITOR",
                    "zero.txt": "zero.txt is a symlink to /dev/zero: not opened in $EDITOR",
                    "pipe.txt": "pipe.txt is a FIFO: not opened in $EDITOR",
                    "linked": f"linked is a symlink to {host['host_dir']}: not opened in $EDITOR"}
        for name, message in expected.items():
            await preview_of(pilot, name) if name != "linked" else None
            app.screen.query_one(FilesPanel).selected = demo.workspace / name
            app.screen.action_open_in_editor()
            await settle(pilot, lambda message=message: any(str(t.render()) == message
                                                            for t in app.screen.query(Toast)), timeout=5)
        assert not opened.exists()  # the editor never ran
        panel = app.screen.query_one(FilesPanel)
        assert panel.refuse_to_edit(demo.workspace / "plain.txt") is None  # a regular file may be opened
        assert panel.refuse_to_edit(host["secret"]) == f"{host['secret']} is outside the workspace: not opened in " \
                                                       "$EDITOR"
        await app.action_quit()
