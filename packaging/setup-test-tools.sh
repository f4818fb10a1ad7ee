#!/usr/bin/env bash
# Host tools the test suite drives for real: tmux (the TUI in a terminal), poppler-utils (reading PDFs
# back), gnome-keyring and dbus (a real Secret Service for the signing key), and Go with golang.org/x/mod
# (golang-go, golang-golang-x-mod-dev: the reference C2SP note/tlog code the interop test verifies exports
# with, built offline in GOPATH mode), and Debian's postgresql and pgbouncer (a real database server behind the
# session's PgBouncer in tests/network). Listed one per line in packaging/apt-test-packages.txt. Installed only when missing, as root with apt; otherwise we say what
# to install and go on (the tests that need a missing tool say so themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
list=packaging/apt-test-packages.txt
[ -f "$list" ] || exit 0
missing=()
while read -r pkg; do
  pkg="${pkg%%#*}"; pkg="${pkg// /}"
  [ -n "$pkg" ] || continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < "$list"
if [ ${#missing[@]} -eq 0 ]; then
  echo "test tools: present"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "test tools: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
else
  echo "test tools: missing ${missing[*]} (install them with your package manager; some tests will say they need them)"
fi
