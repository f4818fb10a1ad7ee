"""A real PostgreSQL server for the database-access tests: Debian's postgresql, started by the test.

initdb and postgres run as an unprivileged user (PostgreSQL refuses root): `postgres` when the package made
it, else `nobody`, in a private folder, listening on a Unix socket in that folder and on a free loopback
port (the address PgBouncer's rules name). A superuser with a password sets up the role and databases.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SUPERUSER_PASSWORD = "super-" + os.urandom(6).hex()


def server_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PgServer:
    folder: Path
    port: int
    bin: Path
    run_as: str | None
    process: subprocess.Popen | None = None

    @property
    def socket_dir(self) -> Path:
        return self.folder / "sock"

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *argv] if self.run_as else argv

    def start(self) -> PgServer:
        data = self.folder / "data"
        self.socket_dir.mkdir()
        pwfile = self.folder / "pw"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.folder, self.socket_dir, pwfile):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        subprocess.run(self._as_user([str(self.bin / "initdb"), "-D", str(data), "-U", "postgres",
                                      "-A", "scram-sha-256", f"--pwfile={pwfile}", "--no-sync"]),
                       check=True, capture_output=True)
        self.process = subprocess.Popen(self._as_user([
            str(self.bin / "postgres"), "-D", str(data), "-k", str(self.socket_dir), "-h", "127.0.0.1",
            "-p", str(self.port), "-c", "fsync=off", "-c", "logging_collector=off"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if (self.socket_dir / f".s.PGSQL.{self.port}").exists():
                try:
                    self.sql("postgres", "select 1")
                    return self
                except subprocess.CalledProcessError:
                    pass
            if self.process.poll() is not None:
                raise RuntimeError("postgres ended at once")
            time.sleep(0.1)
        raise RuntimeError("postgres did not start in 30 s")

    def sql(self, database: str, text: str) -> str:
        """Run `text` as the superuser over TCP with the password (the test's own client, psql on the host)."""
        env = {**os.environ, "PGPASSWORD": SUPERUSER_PASSWORD}
        done = subprocess.run([str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                               "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database,
                               "-c", text], env=env, check=True, capture_output=True, text=True)
        return done.stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def unprivileged_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root with neither a postgres nor a nobody account")
