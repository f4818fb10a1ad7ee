"""The project's network policy: the `[network]` rules in `.workbench/config.toml`.

The file stays readable and editable by hand; each rule is one table:

    [[network.http]]
    url = "https://api.example.com/v2/"      # scheme, host, optional port, path prefix
    methods = ["GET", "HEAD"]                 # default GET and HEAD
    credential = "api-token"                  # a vault secret's NAME (`workbench secret set NAME`)
    inject = "Authorization: Bearer {secret}" # the header the proxy adds with that secret

    [[network.databases]]
    url = "postgres://db.example.com:5432/sales"
    credential = "warehouse"
    role = "analyst"                          # optional: the role PgBouncer logs in as

Only names of secrets are stored, so a project folder never carries a secret. Network rules widen what code
may reach, so an untrusted project's policy is ignored (`ignored_reason` says why; see workbench.trust).
Reading uses tomllib; writing replaces only the `[network]` tables and checks that everything else in the
file reads back exactly as before (`write_rules`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import ConfigError, UsageError
from workbench.inert import one_line

DEFAULT_METHODS = ("GET", "HEAD")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
DEFAULT_PORTS = {"http": 80, "https": 443, "postgres": 5432, "postgresql": 5432}
SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
HTTP_KEYS = {"url", "methods", "credential", "inject", "ca_file"}
DB_KEYS = {"url", "credential", "role"}


class RuleError(ConfigError):
    """A rule that cannot be used: which one and what is wrong with it."""


@dataclass(frozen=True)
class DatabaseRule:
    host: str
    port: int
    dbname: str
    credential: str
    role: str | None = None

    @property
    def url(self) -> str:
        return f"postgres://{_netloc(self.host, self.port)}/{self.dbname}"

    def describe(self) -> str:
        return f"{self.url} (credential {self.credential}{', as ' + self.role if self.role else ''})"


@dataclass(frozen=True)
class HttpRule:
    scheme: str  # "http" or "https": how the proxy reaches the origin (code always speaks plain http to it)
    host: str  # lower case, IPv6 without brackets
    port: int
    path: str = "/"  # the prefix a request's path must start with
    methods: tuple[str, ...] = DEFAULT_METHODS
    credential: str | None = None
    inject: str | None = None  # "Header-Name: template {secret}"
    ca_file: str | None = None  # a CA bundle to verify the origin with instead of the system store

    @property
    def url(self) -> str:
        default = DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{self.host if default and ':' not in self.host else _netloc(self.host, self.port)}" \
               f"{self.path}"

    @property
    def header_name(self) -> str | None:
        return self.inject.split(":", 1)[0].strip() if self.inject else None

    def describe(self) -> str:
        extra = f", {self.header_name} from secret {self.credential}" if self.credential else ""
        return f"{self.url} ({','.join(self.methods)}{extra})"


@dataclass(frozen=True)
class NetworkPolicy:
    http: tuple[HttpRule, ...] = ()
    databases: tuple[DatabaseRule, ...] = ()
    ignored: str = field(default="", compare=False)  # why the project's rules do not apply ("" when they do)

    def __bool__(self) -> bool:
        return bool(self.http or self.databases)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --- parsing one rule ----------------------------------------------------------------------------
def _split_url(url: str, schemes: tuple[str, ...]) -> tuple[urllib.parse.SplitResult, int]:
    if not isinstance(url, str) or "://" not in url:
        raise UsageError(f"{one_line(str(url))!r} is not a URL", "write scheme://host[:port]/path")
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme.lower() not in schemes:
        raise UsageError(f"the scheme {one_line(parsed.scheme)!r} is not supported",
                         f"use {' or '.join(s + '://' for s in schemes)}")
    if parsed.username is not None or parsed.password is not None:
        raise UsageError("a rule's URL carries no user or password", "store it: workbench secret set NAME")
    if parsed.query or parsed.fragment:
        raise UsageError("a rule's URL has no query string or fragment")
    if not parsed.hostname:
        raise UsageError(f"{one_line(url)!r} names no host")
    try:
        port = parsed.port or DEFAULT_PORTS[parsed.scheme.lower()]
    except ValueError:
        raise UsageError(f"{one_line(url)!r} has a bad port") from None
    return parsed, port


def check_secret_name(name: Any) -> str:
    if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
        raise UsageError(f"the credential {one_line(str(name))!r} is not a secret name",
                         "letters, digits, '.', '_' and '-', up to 64")
    return name


def http_rule(url: str, methods: Any = None, credential: Any = None, inject: Any = None,
              ca_file: Any = None) -> HttpRule:
    parsed, port = _split_url(url, ("http", "https"))
    path = parsed.path or "/"
    if any(segment in (".", "..") for segment in path.split("/")) or "%" in path or "\\" in path:
        raise UsageError(f"the path {one_line(path)!r} holds dot segments, escapes or backslashes",
                         "write the prefix as the server spells it, e.g. /v2/")
    if methods is None:
        methods = DEFAULT_METHODS
    if isinstance(methods, str):
        methods = [m for m in methods.split(",") if m.strip()]
    if not isinstance(methods, list | tuple) or not methods:
        raise UsageError("methods is a list such as GET,HEAD")
    upper = tuple(dict.fromkeys(str(m).strip().upper() for m in methods))
    unknown = [m for m in upper if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method {one_line(unknown[0])!r}", f"use some of {','.join(METHODS)}")
    if (credential is None) != (inject is None):
        raise UsageError("--credential and --inject go together",
                         "e.g. --credential NAME --inject 'Authorization: Bearer {secret}'")
    if credential is not None:
        check_secret_name(credential)
        name, colon, template = str(inject).partition(":")
        if not colon or not HEADER_NAME.fullmatch(name.strip()) or name != name.strip() \
                or "{secret}" not in template or any(c in str(inject) for c in "\r\n\0"):
            raise UsageError(f"the inject template {one_line(str(inject))!r} is not 'Header-Name: ... {{secret}}'")
        if template.replace("{secret}", "").count("{") or template.replace("{secret}", "").count("}"):
            raise UsageError("the inject template holds braces other than {secret}")
    if ca_file is not None and (not isinstance(ca_file, str) or not os.path.isabs(ca_file)):
        raise UsageError("ca_file is an absolute path to a CA bundle")
    return HttpRule(parsed.scheme.lower(), parsed.hostname.lower().rstrip("."), port, path, upper,
                    credential, str(inject).strip() if inject is not None else None, ca_file)


def database_rule(url: str, credential: Any = None, role: Any = None) -> DatabaseRule:
    parsed, port = _split_url(url, ("postgres", "postgresql"))
    dbname = parsed.path.lstrip("/")
    if not dbname or "/" in dbname or not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", dbname):
        raise UsageError(f"{one_line(url)!r} names no database (postgres://HOST[:PORT]/DBNAME)")
    if credential is None:
        raise UsageError("a database rule needs --credential NAME (the vault secret holding its password)")
    check_secret_name(credential)
    if role is not None and (not isinstance(role, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", role)):
        raise UsageError(f"the role {one_line(str(role))!r} is not a plain role name")
    return DatabaseRule(parsed.hostname.lower().rstrip("."), port, dbname, credential, role)


def is_database_url(url: str) -> bool:
    return url.strip().lower().startswith(("postgres://", "postgresql://"))


# --- the file ------------------------------------------------------------------------------------
def _section(project_root: Path) -> dict[str, Any]:
    from workbench.config import read_project_toml

    found = read_project_toml(project_root).get("network", {})
    if not isinstance(found, dict):
        raise RuleError("[network] in the project's config is not a table")
    return found


def parse_section(section: dict[str, Any]) -> NetworkPolicy:
    unknown = set(section) - {"http", "databases"}
    if unknown:
        raise RuleError(f"network.{one_line(sorted(unknown)[0])} is not a network setting (http, databases)")
    http: list[HttpRule] = []
    databases: list[DatabaseRule] = []
    for kind, keys, build, out in (("http", HTTP_KEYS, http_rule, http),
                                   ("databases", DB_KEYS, database_rule, databases)):
        entries = section.get(kind, [])
        if not isinstance(entries, list):
            raise RuleError(f"network.{kind} is not a list of rules ([[network.{kind}]] tables)")
        for number, entry in enumerate(entries, 1):
            where = f"network.{kind} rule {number}"
            if not isinstance(entry, dict):
                raise RuleError(f"{where} is not a table")
            where += f" ({one_line(str(entry.get('url', '?')))})"
            extra = set(entry) - keys
            if extra:
                raise RuleError(f"{where}: unknown key {one_line(sorted(extra)[0])!r} ({', '.join(sorted(keys))})")
            try:
                out.append(build(**entry))
            except UsageError as exc:
                raise RuleError(f"{where}: {exc.one_line()}") from None
            except TypeError:
                raise RuleError(f"{where}: no url") from None
    return NetworkPolicy(tuple(http), tuple(databases))


def ignored_reason(project_root: Path) -> str:
    """"" when the project's own policy applies; else why it is ignored (the project is not trusted)."""
    from workbench import trust
    from workbench.project import Project

    found = trust.state(Project.open(project_root))
    return "" if found.trusted else f"the project's network rules are ignored: {found.reason}"


def load_policy(project_root: Path) -> NetworkPolicy:
    """The rules that apply to code in the project: none when the project is not trusted."""
    project_root = Path(project_root)
    section = _section(project_root)
    if not section:
        return NetworkPolicy()
    policy = parse_section(section)
    reason = ignored_reason(project_root)
    return NetworkPolicy(ignored=reason) if reason else policy


def written_policy(project_root: Path) -> NetworkPolicy:
    """The rules as the file holds them, trusted or not (for `workbench network list`)."""
    return parse_section(_section(Path(project_root)))


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def render(policy: NetworkPolicy) -> str:
    out: list[str] = []
    for rule in policy.http:
        out.append("[[network.http]]")
        out.append(f"url = {_toml_value(rule.url)}")
        out.append(f"methods = {_toml_value(rule.methods)}")
        for key in ("credential", "inject", "ca_file"):
            if getattr(rule, key) is not None:
                out.append(f"{key} = {_toml_value(getattr(rule, key))}")
        out.append("")
    for db in policy.databases:
        out.append("[[network.databases]]")
        out.append(f"url = {_toml_value(db.url)}")
        out.append(f"credential = {_toml_value(db.credential)}")
        if db.role:
            out.append(f"role = {_toml_value(db.role)}")
        out.append("")
    return "\n".join(out)


HEADER = re.compile(r"^\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(#.*)?$")


def _without_network(text: str) -> str:
    """The file's text with its [network] tables taken out (the other tables as written, comments too)."""
    kept: list[str] = []
    dropping = False
    for line in text.splitlines():
        match = HEADER.match(line)
        if match:
            name = match.group(1).replace('"', "").replace("'", "").replace(" ", "")
            dropping = name == "network" or name.startswith("network.")
        if not dropping:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + ("\n" if kept else "")


def write_rules(project_root: Path, policy: NetworkPolicy) -> None:
    """Replace the file's [network] tables with `policy`'s; the rest must read back unchanged, or nothing
    is written (a hand-written layout this small writer cannot keep, such as `network = {...}` inline)."""
    from workbench import trust
    from workbench.config import PROJECT_CONFIG
    from workbench.project import Project

    path = Path(project_root) / PROJECT_CONFIG
    if path.is_symlink():
        raise RuleError(f"{path} is a symlink", "replace it with a regular file")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before = tomllib.loads(text)
    before.pop("network", None)
    rest = _without_network(text)
    rendered = render(policy)
    new = rest + ("\n" if rest and rendered else "") + rendered
    after = tomllib.loads(new)
    if after.pop("network", {}) != (tomllib.loads(rendered).get("network", {}) if rendered else {}) \
            or after != before:
        raise RuleError(f"cannot rewrite {path} safely (its [network] part is laid out in a way this writer "
                        "does not keep)", "edit the [network] tables by hand")
    project = Project.open(project_root)
    with trust.own_change(project):
        tmp = path.with_name(f".config.toml.{os.getpid()}.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, path)


def add_rule(project_root: Path, rule: HttpRule | DatabaseRule) -> NetworkPolicy:
    """The policy with `rule` added (one replacing a rule for the same URL), written back."""
    current = written_policy(project_root)
    if isinstance(rule, HttpRule):
        policy = NetworkPolicy(tuple(r for r in current.http if r.url != rule.url) + (rule,), current.databases)
    else:
        policy = NetworkPolicy(current.http, tuple(r for r in current.databases if r.url != rule.url) + (rule,))
    write_rules(project_root, policy)
    return policy


def remove_rule(project_root: Path, url: str) -> NetworkPolicy:
    """The policy without the rule for `url` (as `allow` was given it or as `list` shows it)."""
    current = written_policy(project_root)
    if is_database_url(url):
        wanted = database_rule(url, credential="x").url
        kept_db = tuple(r for r in current.databases if r.url != wanted)
        policy = NetworkPolicy(current.http, kept_db)
        found = len(kept_db) != len(current.databases)
    else:
        wanted = http_rule(url).url
        kept = tuple(r for r in current.http if r.url != wanted)
        policy = NetworkPolicy(kept, current.databases)
        found = len(kept) != len(current.http)
    if not found:
        raise UsageError(f"no rule for {one_line(url)} in the project's network policy", "see: workbench network list")
    write_rules(project_root, policy)
    return policy
