"""The network user code may reach, under the project's policy (`workbench network allow ...`).

Nothing is imported here: the sandbox reaches each part lazily, so a project with no policy pays nothing.

    rules.py       the policy: [network] rules in .workbench/config.toml, `load_policy(project_root)`
    secrets.py     the credential vault (`get_secret(name)`): the OS keyring, or the 0600 fallback file
    httpproxy.py   the HTTP policy proxy: a request leaves only when a rule allows its host, port, path
                   and method; the credential injected there, TLS opened there for https origins
    http_access.py a session's HTTP access: the proxy's socket, the mount, relay and proxy environment
                   every execution container gets (one-off and warm), net.request events
    redact.py      the leak scan: no injected secret's value is kept in any event or result (secret.leak)
    approval.py    `[agent] approval = "ask"`: the first request to each destination in a session asks
    reach.py       what the project's code may reach, in the words doctor and the approval dialog share
    databases.py   a session's database access: PgBouncer and its relay, the mount at /run/workbench/pg,
                   and `--lang sql --db NAME`
    pgbouncer.py   Debian's pgbouncer for one session: config and password file in a private folder
    pgrelay.py     the socket the sandbox sees: checks the database named, counts bytes for net.connection
    shared_socket.py  the Unix socket both of those serve, shared by the sessions of one project
"""
