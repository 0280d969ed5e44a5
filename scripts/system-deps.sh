#!/usr/bin/env bash
# Debian packages Labelwise needs: OpenCV (pulled in by ultralytics) loads libGL and glib;
# the tests run the catalog suites on a real PostgreSQL server (tests/postgres_server.py).
# Installs only what is missing, so a second run costs nothing.
set -euo pipefail
packages=(libgl1 libglib2.0-0 curl postgresql)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
  echo "system-deps: missing Debian packages ${missing[*]}; install them as root" >&2
  exit 1
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "system-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
