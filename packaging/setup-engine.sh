#!/usr/bin/env bash
# Set up the container engine Workbench runs code in: Podman, configured for this machine, with its
# Docker-compatible API listening on a unix socket.
#
# Idempotent: every step checks first and does nothing when already done, so a second run takes seconds.
#
#   packaging/setup-engine.sh            install (root + apt), configure, start the API socket
#   packaging/setup-engine.sh --check    only say what is missing (exit 1 when something is)
#   packaging/setup-engine.sh --runsc    also install gVisor's runsc (Debian package `runsc`, or a
#                                        runsc_*.deb in debs/ beside this script when offline) and
#                                        start its Podman service; done anyway when runsc is installed
#
# Why each setting (measured on Debian 12 VMs with cgroup v1 "hybrid" and no systemd):
#   runtime = "runc"          crun fails there with "cgroups in hybrid mode not supported".
#   default_ulimits           Podman's defaults ask for more than the hard limits; root without
#                             CAP_SYS_RESOURCE then fails with "setrlimit RLIMIT_NOFILE". We stay at or
#                             under `ulimit -Hn` / `ulimit -Hu`.
#   exit_command_delay = 10   each API exec keeps two conmon processes for this many seconds (300 by
#                             default), which piles up hundreds of processes under load.
#   cgroup_manager/events     no systemd as PID 1: cgroupfs and a file event log.
#
# Root uses /etc/containers/containers.conf and /run/podman/podman.sock; an ordinary user uses
# ~/.config/containers/ and $XDG_RUNTIME_DIR/podman/podman.sock (rootless Podman).
#
# gVisor ([sandbox] runtime = "runsc"; see workbench/sandbox/gvisor.py for the why of each piece):
#   Podman's API cannot choose a runtime per container, so gVisor gets a second Podman service on
#   podman-runsc.sock beside the first, reading containers-runsc.conf (the same settings, runtime runsc).
#   Its runsc is a wrapper, /usr/local/libexec/workbench/runsc, adding the flags that work here:
#   --network=none (runsc refuses a network in the root network namespace; code has none anyway) and
#   --host-uds=all (the warm-session runner's socket and the install proxy's are on bind-mounted folders).
#   Rootful only: runsc runs as root here; rootless Podman keeps runc.
set -euo pipefail

PACKAGES=(podman runc conmon catatonit netavark aardvark-dns iptables uidmap slirp4netns fuse-overlayfs mmdebstrap)
MARKER="# Managed by Workbench packaging/setup-engine.sh"
CHECK_ONLY=0
CONFIG_CHANGED=0
RUNSC_WANTED=0
RUNSC_CHANGED=0
RUNSC_WRAPPER=/usr/local/libexec/workbench/runsc
for arg in "$@"; do
  case "$arg" in
    --check) CHECK_ONLY=1 ;;
    --runsc) RUNSC_WANTED=1 ;;
    *) printf 'setup-engine: error: unknown option %s (use --check, --runsc)\n' "$arg" >&2; exit 2 ;;
  esac
done

step() { printf 'setup-engine: %s\n' "$*"; }
die() { printf 'setup-engine: error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" = 0 ]; }

# --- 1. packages ------------------------------------------------------------------------------------
missing_packages() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || printf '%s ' "$p"
  done
}

install_packages() {
  local missing
  if command -v dpkg-query >/dev/null 2>&1; then
    missing=$(missing_packages)
  elif command -v podman >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1; then
    missing=""
  else
    missing="${PACKAGES[*]}"
  fi
  if [ -z "$missing" ] && ! command -v podman >/dev/null 2>&1; then
    missing="podman"  # the package is there but not on PATH
  fi
  if [ -z "$missing" ]; then
    step "packages: present ($(podman --version))"
    return
  fi
  if [ "$CHECK_ONLY" = 1 ]; then
    step "packages: missing: $missing"
    return 1
  fi
  if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
    cat >&2 <<EOF
setup-engine: error: these packages are missing and this script can only install them as root with apt:
  $missing
Install them yourself, e.g.:
  sudo apt-get install -y ${PACKAGES[*]}        (Debian, Ubuntu)
  sudo dnf install -y podman runc conmon catatonit netavark aardvark-dns iptables shadow-utils slirp4netns fuse-overlayfs mmdebstrap   (Fedora)
then run this script again (as yourself for rootless Podman).
EOF
    exit 1
  fi
  step "packages: installing $missing"
  export DEBIAN_FRONTEND=noninteractive
  local apt_opts=(-y -qq -o Dpkg::Use-Pty=0 --no-install-recommends)
  # `apt-get update` only when the package lists are missing or too old to know the packages.
  # shellcheck disable=SC2086
  if ! apt-get install "${apt_opts[@]}" $missing >/tmp/workbench-apt.log 2>&1; then
    step "packages: refreshing the package lists (apt-get update)"
    apt-get update -qq >>/tmp/workbench-apt.log 2>&1 || die "apt-get update failed (see /tmp/workbench-apt.log)"
    # shellcheck disable=SC2086
    apt-get install "${apt_opts[@]}" $missing >>/tmp/workbench-apt.log 2>&1 \
      || die "apt-get install failed (see /tmp/workbench-apt.log)"
  fi
  step "packages: installed ($(podman --version))"
}

# --- 2. configuration -------------------------------------------------------------------------------
conf_dir() { if is_root; then echo /etc/containers; else echo "${XDG_CONFIG_HOME:-$HOME/.config}/containers"; fi; }

write_if_changed() {  # write_if_changed FILE CONTENT: replace FILE only when its content differs
  local file=$1 content=$2
  if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then
    step "config: $file up to date"
    return
  fi
  if [ "$CHECK_ONLY" = 1 ]; then
    step "config: $file needs writing"
    return 1
  fi
  mkdir -p "$(dirname "$file")"
  if [ -f "$file" ] && ! grep -qF "$MARKER" "$file" && [ ! -e "$file.before-workbench" ]; then
    cp -p "$file" "$file.before-workbench"
    step "config: kept the previous $file as $file.before-workbench"
  fi
  printf '%s\n' "$content" >"$file.tmp"
  mv "$file.tmp" "$file"
  CONFIG_CHANGED=1
  step "config: wrote $file"
}

configure() {
  local dir nofile nproc
  dir=$(conf_dir)
  nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
  [ "$nofile" = unlimited ] && nofile=1048576
  [ "$nproc" = unlimited ] && nproc=1048576
  # Podman's own defaults, capped at what this process may set.
  [ "$nofile" -gt 1048576 ] && nofile=1048576
  # Podman caps its own RLIMIT_NPROC at 32768 when it starts (measured: 96364 -> 32768), so a higher
  # default fails every container with "setrlimit type 6".
  [ "$nproc" -gt 32768 ] && nproc=32768
  ENGINE_CONF="$MARKER
# Why each line: see the header of packaging/setup-engine.sh in the Workbench sources.
[containers]
default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]

[engine]
runtime = \"runc\"
exit_command_delay = 10
cgroup_manager = \"cgroupfs\"
events_logger = \"file\""
  write_if_changed "$dir/containers.conf" "$ENGINE_CONF"
  if ! is_root; then
    # The overlay driver (kernel or fuse-overlayfs); without this rootless Podman may pick slow vfs.
    # runroot and graphroot are Podman's own rootless defaults, spelled out: a user storage.conf without
    # runroot makes the API's commit fail on Podman 4.3 ("CommitFailure: runroot must be set"), which
    # is how an apt-using language's project image is made.
    local runroot="${XDG_RUNTIME_DIR:-/run/user/$(id -u)}/containers"
    local graphroot="${XDG_DATA_HOME:-$HOME/.local/share}/containers/storage"
    write_if_changed "$dir/storage.conf" "$MARKER
[storage]
driver = \"overlay\"
runroot = \"$runroot\"
graphroot = \"$graphroot\""
  fi
}

# --- 2b. a host id range for sandboxed code (rootful Podman run by root) ------------------------------
# Code runs in a user namespace mapped to this range (workbench/sandbox/policy.py), so on the host it is a
# uid at or above 100000 that owns no account. `containers` is Podman's own name for such a reservation;
# useradd allocates people's subordinate ids from 100000 upward and so never hands this range out.
SUBID_RANGE="containers:2000000000:65536"
reserve_ids() {
  is_root || return 0
  local f missing=0
  for f in /etc/subuid /etc/subgid; do
    if ! grep -q '^containers:' "$f" 2>/dev/null; then
      if [ "$CHECK_ONLY" = 1 ]; then
        step "missing: a '$SUBID_RANGE' line in $f"
        missing=1
      else
        echo "$SUBID_RANGE" >>"$f"
        step "reserved: $SUBID_RANGE in $f"
      fi
    fi
  done
  return "$missing"
}

# --- 3. the API service -----------------------------------------------------------------------------
socket_path() {
  if is_root; then
    echo /run/podman/podman.sock
  else
    local runtime=${XDG_RUNTIME_DIR:-/run/user/$(id -u)}
    echo "$runtime/podman/podman.sock"
  fi
}

pings() { curl -fsS --max-time 2 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }

start_service() {  # start_service [SOCKET CONFIG_FILE CHANGED]: the usual service, or the gVisor one
  local sock log pidfile name changed=$CONFIG_CHANGED conf=""
  sock=$(socket_path)
  if [ $# -gt 0 ]; then sock=$1; conf=$2; changed=$3; fi
  name=$(basename "$sock" .sock)
  pidfile="$(dirname "$sock")/${name/podman/podman-service}.pid"
  if [ "$changed" = 1 ] && [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    step "service: restarting it to read the new configuration"
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 50); do pings "$sock" || break; sleep 0.1; done
  fi
  if pings "$sock"; then
    step "service: $sock answers"
    return
  fi
  if [ "$CHECK_ONLY" = 1 ]; then
    step "service: $sock does not answer"
    return 1
  fi
  if ! is_root; then
    if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
      export XDG_RUNTIME_DIR=/run/user/$(id -u)
      [ -d "$XDG_RUNTIME_DIR" ] || mkdir -p "$XDG_RUNTIME_DIR" 2>/dev/null \
        || { XDG_RUNTIME_DIR=/tmp/workbench-runtime-$(id -u); mkdir -p "$XDG_RUNTIME_DIR"; }
      chmod 700 "$XDG_RUNTIME_DIR"
      sock=$(socket_path)
      step "service: XDG_RUNTIME_DIR was unset; using $XDG_RUNTIME_DIR (export it for Workbench too)"
    fi
  fi
  mkdir -p "$(dirname "$sock")"
  rm -f "$sock"
  log="$(dirname "$sock")/${name/podman/podman-service}.log"
  step "service: starting podman system service on $sock (log: $log)"
  # From the socket's folder, not the caller's: conmon writes stray files (an empty `oom` marker when a
  # container is OOM-killed) into the working directory it inherits, which was the user's checkout.
  pushd "$(dirname "$sock")" >/dev/null
  if [ -n "$conf" ]; then
    CONTAINERS_CONF=$conf nohup setsid podman system service --time=0 "unix://$sock" >"$log" 2>&1 </dev/null &
  else
    nohup setsid podman system service --time=0 "unix://$sock" >"$log" 2>&1 </dev/null &
  fi
  echo $! >"$pidfile"
  popd >/dev/null
  local i
  for i in $(seq 1 100); do
    if pings "$sock"; then
      step "service: $sock answers after $((i / 10)).$((i % 10)) s"
      return
    fi
    sleep 0.1
  done
  die "the podman service did not answer on $sock within 10 s; see $log"
}

# --- 4. gVisor (optional) ---------------------------------------------------------------------------
runsc_binary() { command -v runsc 2>/dev/null || { [ -x /usr/bin/runsc ] && echo /usr/bin/runsc; } || true; }

install_runsc() {
  local deb
  [ -n "$(runsc_binary)" ] && return 0
  if [ "$CHECK_ONLY" = 1 ]; then
    step "gvisor: runsc is not installed"
    return 1
  fi
  if ! is_root || ! command -v apt-get >/dev/null 2>&1; then
    printf 'setup-engine: error: runsc (gVisor) is missing; install it as root, e.g.: sudo apt-get install -y runsc\n' >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  deb=$(ls "$(dirname "$0")"/debs/runsc_*.deb 2>/dev/null | head -1 || true)
  if [ -n "$deb" ]; then
    step "gvisor: installing $deb (no network)"
    apt-get install -y -qq --no-download -o Dpkg::Use-Pty=0 "$deb" >>/tmp/workbench-apt.log 2>&1 \
      || die "installing $deb failed (see /tmp/workbench-apt.log)"
  else
    step "gvisor: installing runsc"
    apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends runsc >>/tmp/workbench-apt.log 2>&1 || {
      apt-get update -qq >>/tmp/workbench-apt.log 2>&1 \
        && apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends runsc >>/tmp/workbench-apt.log 2>&1; } \
      || die "apt-get install runsc failed (see /tmp/workbench-apt.log)"
  fi
  step "gvisor: installed ($(runsc --version | head -1))"
}

setup_runsc() {
  local dir runsc wrapper
  if ! is_root; then
    [ "$RUNSC_WANTED" = 1 ] && step "gvisor: skipped: Workbench runs gVisor under rootful Podman only (run this as root)"
    return 0
  fi
  [ "$RUNSC_WANTED" = 1 ] || [ -n "$(runsc_binary)" ] || return 0
  install_runsc || return 1
  runsc=$(runsc_binary)
  dir=$(conf_dir)
  wrapper="#!/bin/sh
$MARKER
# gVisor with the flags Workbench needs: see the header of packaging/setup-engine.sh.
exec $runsc --network=none --host-uds=all \"\$@\""
  if [ -f "$RUNSC_WRAPPER" ] && [ "$(cat "$RUNSC_WRAPPER")" = "$wrapper" ]; then
    step "gvisor: $RUNSC_WRAPPER up to date"
  elif [ "$CHECK_ONLY" = 1 ]; then
    step "gvisor: $RUNSC_WRAPPER needs writing"
    return 1
  else
    mkdir -p "$(dirname "$RUNSC_WRAPPER")"
    printf '%s\n' "$wrapper" >"$RUNSC_WRAPPER.tmp"
    chmod 755 "$RUNSC_WRAPPER.tmp"
    mv "$RUNSC_WRAPPER.tmp" "$RUNSC_WRAPPER"
    RUNSC_CHANGED=1
    step "gvisor: wrote $RUNSC_WRAPPER"
  fi
  local before=$CONFIG_CHANGED
  CONFIG_CHANGED=0
  write_if_changed "$dir/containers-runsc.conf" "${ENGINE_CONF/runtime = \"runc\"/runtime = \"runsc\"}

[engine.runtimes]
runsc = [\"$RUNSC_WRAPPER\"]" || return 1
  [ "$CONFIG_CHANGED" = 1 ] && RUNSC_CHANGED=1
  CONFIG_CHANGED=$before
  start_service "$(dirname "$(socket_path)")/podman-runsc.sock" "$dir/containers-runsc.conf" "$RUNSC_CHANGED"
}

main() {
  local rc=0
  command -v curl >/dev/null 2>&1 || die "curl is needed to check the engine socket (apt-get install curl)"
  install_packages || rc=1
  if command -v podman >/dev/null 2>&1; then
    configure || rc=1
    reserve_ids || rc=1
    start_service || rc=1
    setup_runsc || rc=1
  fi
  [ "$rc" = 0 ] && step "done: export DOCKER_HOST=unix://$(socket_path) or let Workbench find it"
  return "$rc"
}

main "$@"
