"""Two threads and two processes creating the signing key at once end up with one key."""

from __future__ import annotations

import subprocess
import sys
import threading

from keyring.backends import fail

from workbench.audit.keys import KeyStore


def test_threads_creating_the_key_agree(tmp_path, monkeypatch):
    import keyring

    keyring.set_keyring(fail.Keyring())
    fingerprints: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def create() -> None:
        try:
            start.wait()
            fingerprints.append(KeyStore(tmp_path).info(create=True).fingerprint)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(fingerprints)) == 1
    assert KeyStore(tmp_path).info(create=False).fingerprint == fingerprints[0]


def test_processes_creating_the_key_agree(tmp_path):
    script = ("import keyring, sys; from keyring.backends import fail; keyring.set_keyring(fail.Keyring()); "
              "from workbench.audit.keys import KeyStore; from pathlib import Path; "
              "print(KeyStore(Path(sys.argv[1])).info(create=True).fingerprint)")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(outputs) == 1 and "" not in outputs
