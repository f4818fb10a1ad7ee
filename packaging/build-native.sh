#!/usr/bin/env bash
# The audit scan's optional C loops (workbench/audit/scan_native.c): built next to the source, for the
# virtualenv's Python, when the source is newer than the module or the module is missing. Without a C
# compiler, Python's headers or OpenSSL's, verification still works, in Python, about twice as slow; this
# script then says so and exits 0 (a missing part is reported, never a failed setup).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
src=workbench/audit/scan_native.c
suffix=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
out="workbench/audit/scan_native$suffix"

if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt "$0" ]; then
  echo "native scan: up to date ($out)"
  exit 0
fi
include=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null || [ ! -f "$include/Python.h" ]; then
  echo "native scan: not built (needs a C compiler and Python's headers: apt-get install build-essential python3-dev); verification runs in Python"
  exit 0
fi
if ! printf '#include <openssl/sha.h>\n' | "$cc" -E -x c - >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "native scan: installing OpenSSL's headers (libssl-dev)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends libssl-dev \
      >/tmp/workbench-apt-native.log 2>&1 || true
  fi
  if ! printf '#include <openssl/sha.h>\n' | "$cc" -E -x c - >/dev/null 2>&1; then
    echo "native scan: not built (needs OpenSSL's headers: apt-get install libssl-dev); verification runs in Python"
    exit 0
  fi
fi
tmp="$out.tmp.$$"
if "$cc" -O2 -Wall -Wextra -Werror -shared -fPIC -I"$include" "$src" -o "$tmp" -lcrypto 2>/tmp/workbench-native.log \
   && "$PY" -c 'import importlib.machinery as m, importlib.util as u, sys
spec = u.spec_from_file_location("scan_native", sys.argv[1], loader=m.ExtensionFileLoader("scan_native", sys.argv[1]))
u.module_from_spec(spec)' "$tmp"; then
  mv -f "$tmp" "$out"
  echo "native scan: built ($out)"
else
  rm -f "$tmp"
  echo "native scan: not built (the compiler failed: /tmp/workbench-native.log); verification runs in Python"
fi
