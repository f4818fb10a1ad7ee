"""A host-side PgBouncer for one project session: the only process that holds a database password.

For a project whose policy has `postgres://` rules, the session starts Debian's `pgbouncer` with a config
generated here, in a private folder Workbench makes for it (0700, outside the project and its workspace:
the user's runtime folder or the temporary folder), and stops it, folder and all, when the session ends.

    <private>/pgbouncer.ini    [databases]: one entry per allowed database, forced to the rule's role
    <private>/userlist.txt     "role" "password": the password from the vault (0600, like the config)
    <private>/<token>/         PgBouncer's own Unix socket (listen_addr is empty: no TCP port at all)

Who reaches that socket: only Workbench's relay (`workbench.network.pgrelay`), which serves the socket
the container sees; the private folder is never mounted. `auth_type = trust` because the relay already
decided who may connect (the sandbox, through the mounted socket) and which database it may name, and it
always logs in as the rule's role: PgBouncer then only checks that role is in the password file, and
logs in to the real server as that role (`user=ROLE` forced on every entry) with the vault's password,
by SCRAM or md5 as the server asks. A database not listed does not exist for it. (`auth_type = any`
would not read the password file, and the password would have to sit in the main config.)

PgBouncer refuses to run as root. Run by root (CI, a fresh machine), it is started as root with
`user = nobody` in its config: it reads the config and the password file as root, then drops to nobody
before it opens its socket, so its socket folder is handed to nobody, under a name nobody cannot list
(the private folder is 0711 in that case: traversable, not readable).
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.findings import Finding
from workbench.inert import one_line

PROGRAM = "pgbouncer"
INSTALL_HINT = "install Debian's PgBouncer: sudo apt-get install pgbouncer"
LISTEN_PORT = 6432  # only names PgBouncer's socket file (.s.PGSQL.6432); there is no TCP listener
START_TIMEOUT = 10.0
ROOT_RUNS_AS = "nobody"
PREFIX = "workbench-pg-"
OWNER_FILE = "owner"  # "<Workbench's pid> <PgBouncer's pid>": what a later start cleans up after a crash
# Names go into an ini file and a connection string: plain words only, never quoted or escaped.
PLAIN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$")
HOST = re.compile(r"^[A-Za-z0-9_.:-]{1,253}$")


class DatabaseAccessError(WorkbenchError):
    """PgBouncer missing, a rule it cannot serve, or a credential it cannot use."""

    exit_code = 5


@dataclass(frozen=True)
class Target:
    """One allowed database, as PgBouncer serves it (the password stays on the host side)."""

    dbname: str
    host: str
    port: int
    role: str
    credential: str


def targets(rules: Iterable[object]) -> list[Target]:
    """`DatabaseRule`s (workbench.network.rules) as targets; a name that cannot go into PgBouncer's config
    is one line naming the rule."""
    found: list[Target] = []
    for rule in rules:
        dbname, host = str(getattr(rule, "dbname", "")), str(getattr(rule, "host", ""))
        port = int(getattr(rule, "port", None) or 5432)
        credential = str(getattr(rule, "credential", "") or "")
        role = str(getattr(rule, "role", "") or "") or credential
        where = f"postgres://{one_line(host)}:{port}/{one_line(dbname)}"
        for label, value in (("database name", dbname), ("role", role), ("credential name", credential)):
            if not PLAIN.match(value):
                raise DatabaseAccessError(f"the rule {where} has an unusable {label} {one_line(value)!r}",
                                          "use letters, digits, _, . or - (workbench network remove, then allow)")
        if not HOST.match(host) or not 0 < port < 65536:
            raise DatabaseAccessError(f"the rule {where} has an unusable host or port",
                                      "workbench network remove it, then allow postgres://HOST:PORT/DBNAME")
        if any(t.dbname == dbname for t in found):
            raise DatabaseAccessError(f"two rules allow a database named {dbname!r}",
                                      "code names a database by its name alone: remove one of them")
        found.append(Target(dbname, host, port, role, credential))
    return found


def find_program() -> str:
    """The pgbouncer binary, or one line saying how to install it (Debian puts it in /usr/sbin)."""
    found = shutil.which(PROGRAM) or shutil.which(PROGRAM, path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise DatabaseAccessError("the project's network policy allows PostgreSQL databases but pgbouncer "
                                  "is not installed", INSTALL_HINT)
    return found


def _quoted(value: str) -> str:
    """A userlist.txt field: double quotes, a quote inside doubled (PgBouncer's own rule)."""
    return '"' + value.replace('"', '""') + '"'


def config_text(found: list[Target], socket_dir: Path, userlist: Path, run_as: str | None) -> str:
    lines = ["[databases]"]
    lines += [f"{t.dbname} = host={t.host} port={t.port} dbname={t.dbname} user={t.role}" for t in found]
    lines += ["", "[pgbouncer]", "listen_addr =", f"listen_port = {LISTEN_PORT}",
              f"unix_socket_dir = {socket_dir}", "unix_socket_mode = 0600", "auth_type = trust",
              f"auth_file = {userlist}", "pool_mode = session", "logfile =", "pidfile =",
              "admin_users =", "stats_users =", "log_connections = 0", "log_disconnections = 0",
              # psql and psycopg send these; PgBouncer would refuse the connection over them otherwise
              "ignore_startup_parameters = extra_float_digits,options",
              "server_login_retry = 1", "server_connect_timeout = 10"]
    if run_as:
        lines.append(f"user = {run_as}")
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def private_parent() -> Path:
    """Where the private folder goes: the user's runtime folder when it is ours, else the temp folder. Run
    by root, the temp folder: PgBouncer (then nobody) must pass through the parent, and root's runtime
    folder is 0700."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    if runtime and os.geteuid() != 0:
        try:
            st = os.stat(runtime)
            if st.st_uid == os.getuid() and st.st_mode & 0o077 == 0:
                return Path(runtime)
        except OSError:
            pass
    return Path(tempfile.gettempdir())


def remove_stale(parent: Path) -> int:
    """End the PgBouncers a crashed Workbench left running (their owner process is gone) and remove their
    folders, so no password outlives its session for long. Only our own folders, and only a process whose
    command line names that folder's config."""
    removed = 0
    for folder in parent.glob(f"{PREFIX}*"):
        try:
            st = os.lstat(folder)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                continue
            owner, bouncer = (int(x) for x in (folder / OWNER_FILE).read_text().split()[:2])
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        try:
            with open(f"/proc/{bouncer}/cmdline", "rb") as handle:
                if str(folder / "pgbouncer.ini").encode() in handle.read().split(b"\0"):
                    os.kill(bouncer, signal.SIGTERM)
        except OSError:
            pass
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PgBouncer:
    """One running PgBouncer for a session's allowed databases. `secret(name)` reads the vault."""

    def __init__(self, found: list[Target], secret: Callable[[str], str]):
        self.targets = found
        self.secret = secret
        self.private: Path | None = None
        self.socket_dir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        assert self.socket_dir is not None
        return self.socket_dir / f".s.PGSQL.{LISTEN_PORT}"

    def files(self) -> list[Path]:
        assert self.private is not None
        return [self.private / "pgbouncer.ini", self.private / "userlist.txt"]

    def start(self) -> PgBouncer:
        program = find_program()
        passwords = {}
        for target in self.targets:  # before anything is written: an unknown secret changes nothing
            password = self.secret(target.credential)
            if "\n" in password or "\r" in password or "\0" in password:
                raise DatabaseAccessError(f"the secret {target.credential!r} holds a line break or NUL, which "
                                          "PgBouncer's password file cannot carry",
                                          f"workbench secret set {target.credential}")
            passwords[target.role] = password
        remove_stale(private_parent())
        self.private = Path(tempfile.mkdtemp(prefix=PREFIX, dir=private_parent()))
        run_as = ROOT_RUNS_AS if os.geteuid() == 0 else None
        self.socket_dir = self.private / secrets.token_hex(12)
        os.mkdir(self.socket_dir, 0o700)
        if run_as:
            entry = pwd.getpwnam(run_as)
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.private, 0o711)
        config, userlist = self.files()
        _write_private(userlist, "".join(f"{_quoted(role)} {_quoted(pw)}\n" for role, pw in passwords.items()))
        _write_private(config, config_text(self.targets, self.socket_dir, userlist, run_as))
        log = self.private / "pgbouncer.log"
        with open(log, "wb") as out:
            self.process = subprocess.Popen([program, str(config)], stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, close_fds=True, start_new_session=True)
        _write_private(self.private / OWNER_FILE, f"{os.getpid()} {self.process.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.socket_path.exists():
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        tail = self._log_tail(log)
        self.stop()
        raise DatabaseAccessError(f"pgbouncer did not start: {tail or 'no socket after {START_TIMEOUT:g} s'}",
                                  "run it by hand with the same settings to see why, or check the rules: "
                                  "workbench network list")

    @staticmethod
    def _log_tail(log: Path) -> str:
        try:
            lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        fatal = [line for line in lines if "FATAL" in line or "ERROR" in line]
        return one_line((fatal or lines or [""])[-1])

    def stop(self) -> None:
        """End PgBouncer (SIGTERM: connections close at once) and remove the private folder."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        private, self.private = self.private, None
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def check(settings: object = None) -> list[Finding]:
    """Doctor's finding: is PgBouncer here for a project whose policy allows PostgreSQL databases?"""
    try:
        program = find_program()
    except DatabaseAccessError:
        return [Finding("pgbouncer", "warn", "not installed: a project whose network policy allows a "
                        "postgres:// database cannot reach it (other code is unaffected)", INSTALL_HINT)]
    try:
        version = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    first = one_line(version.splitlines()[0]) if version.strip() else program
    return [Finding("pgbouncer", "ok", f"{first} ({program}): postgres:// rules are served through it")]
