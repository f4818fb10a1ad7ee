"""`workbench network` (what code may reach) and `workbench secret` (the vault the proxy injects from)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from workbench.cli.common import open_project, project_option, say


@click.group()
def network() -> None:
    """The project's network policy: the APIs and PostgreSQL databases its code may reach.

    \b
    workbench network allow -p DIR https://api.example.com/v2/ --credential NAME --inject 'Authorization: Bearer {secret}'
    workbench network allow -p DIR postgres://db.lan/sales --credential NAME [--as ROLE]
    workbench network list -p DIR
    workbench network remove -p DIR URL"""


def _ignored_note(project_dir: Path) -> None:
    from workbench.network.rules import ignored_reason

    reason = ignored_reason(project_dir)
    if reason:
        say(f"workbench: {reason}; to trust it: workbench trust -p {project_dir}", err=True, fg="yellow")


@network.command()
@project_option
@click.argument("url")
@click.option("--method", "methods", default=None, help="Methods allowed, comma separated (default GET,HEAD).")
@click.option("--credential", default=None, help="The vault secret the proxy (or PgBouncer) uses.")
@click.option("--inject", default=None, help="The header the proxy adds: 'Header-Name: ... {secret}'.")
@click.option("--ca-file", default=None, help="A CA bundle to verify an https origin with (default: system).")
@click.option("--as", "role", default=None, help="The PostgreSQL role to log in as (postgres:// only).")
def allow(project_dir: Path, url: str, methods: str | None, credential: str | None, inject: str | None,
          ca_file: str | None, role: str | None) -> None:
    """Let the project's code reach URL (an http(s) prefix, or postgres://HOST[:PORT]/DBNAME)."""
    from workbench.errors import UsageError
    from workbench.network import rules

    project = open_project(project_dir)
    if rules.is_database_url(url):
        if methods or inject or ca_file:
            raise UsageError("--method, --inject and --ca-file are for http(s) rules",
                             "postgres://HOST[:PORT]/DBNAME --credential NAME [--as ROLE]")
        rule: rules.HttpRule | rules.DatabaseRule = rules.database_rule(url, credential, role)
    else:
        if role:
            raise UsageError("--as is for postgres:// rules")
        rule = rules.http_rule(url, methods, credential, inject, ca_file)
    rules.add_rule(project.root, rule)
    say(f"allowed: {rule.describe()}")
    if rule.credential:
        from workbench.network.secrets import list_secrets

        if rule.credential not in list_secrets():
            say(f"workbench: the secret {rule.credential!r} is not in the vault yet "
                f"(printf '%s' VALUE | workbench secret set {rule.credential})", err=True, fg="yellow")
    _ignored_note(project.root)


@network.command(name="list")
@project_option
def list_(project_dir: Path) -> None:
    """The project's rules, as its config holds them."""
    from workbench.network import rules

    project = open_project(project_dir)
    policy = rules.written_policy(project.root)
    if not policy:
        say("no network rules: code in this project has no network")
        return
    for rule in policy.http:
        say(f"http      {rule.describe()}")
    for db in policy.databases:
        say(f"postgres  {db.describe()}")
    _ignored_note(project.root)


@network.command()
@project_option
@click.argument("url")
def remove(project_dir: Path, url: str) -> None:
    """Remove the rule for URL."""
    from workbench.network import rules

    project = open_project(project_dir)
    rules.remove_rule(project.root, url)
    say(f"removed: {url}")


@click.group()
def secret() -> None:
    """The vault of credentials the network proxy and PgBouncer use for code (code never sees them)."""


@secret.command(name="set")
@click.argument("name")
def set_(name: str) -> None:
    """Store NAME, reading its value from stdin (never from the command line)."""
    from workbench.errors import UsageError
    from workbench.network.secrets import set_secret

    if sys.stdin.isatty():
        value = click.prompt(f"value of {name}", hide_input=True, err=True)
    else:
        value = sys.stdin.read()
    value = value.rstrip("\r\n")
    if not value:
        raise UsageError("no value on stdin", f"printf '%s' VALUE | workbench secret set {name}")
    where = set_secret(name, value)
    say(f"stored secret {name} in {where}")


@secret.command(name="list")
def list_secrets_() -> None:
    """The secrets' names (never their values)."""
    from workbench.network.secrets import backend, list_secrets

    names = list_secrets()
    for name in names:
        say(name)
    if not names:
        say("no secrets")
    say(f"kept in {backend()}", err=True)


@secret.command(name="rm")
@click.argument("name")
def rm(name: str) -> None:
    """Remove the secret NAME."""
    from workbench.network.secrets import remove_secret

    remove_secret(name)
    say(f"removed secret {name}")
