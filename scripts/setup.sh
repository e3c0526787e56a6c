#!/usr/bin/env bash
# Everything a fresh Debian 12 machine needs for `make demo` / `make test`. Idempotent; a second run takes ~1 s.
#   1. system packages (apt-get only for what is missing): Java 17, Maven, PostgreSQL, Chromium + driver, fonts, poppler,
#      wrk (the scan benchmark's load generator)
#   2. .venv with Python 3.11 and `pip install -e '.[dev]'` (skipped while pyproject.toml is unchanged)
#   3. the Kafka jars from Maven Central into .kafka/libs (skipped while kafka/pom.xml is unchanged)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# --- 1. system packages ---------------------------------------------------------------------------------------
need=()
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in postgresql chromium chromium-driver fonts-dejavu-core poppler-utils wrk; do
  installed "$pkg" || need+=("$pkg")
done
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
PY="${PYTHON:-python3.11}"
if ! command -v "$PY" >/dev/null 2>&1; then
  need+=(python3.11 python3.11-venv)
elif ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=(python3.11-venv)  # Debian's python3.11 ships without ensurepip
fi
if ((${#need[@]})); then
  log "apt-get install ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/ocop-apt.log 2>&1 \
    || { tail -20 /tmp/ocop-apt.log; exit 1; }
fi

# --- 2. Python virtualenv ---------------------------------------------------------------------------------------
marker=.venv/.ocop-pyproject-sha256
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
  log "creating .venv with $PY"
  rm -rf .venv
  "$PY" -m venv .venv
  rm -f "$marker"
fi
if [ "$(cat "$marker" 2>/dev/null)" != "$want" ] || [ ! -x .venv/bin/ocop-trace ]; then
  log "pip install -e '.[dev]' (log: /tmp/ocop-pip.log)"
  .venv/bin/python -m pip install -q --upgrade pip >/tmp/ocop-pip.log 2>&1 || { tail -20 /tmp/ocop-pip.log; exit 1; }
  .venv/bin/python -m pip install -e '.[dev]' >>/tmp/ocop-pip.log 2>&1 || { tail -30 /tmp/ocop-pip.log; exit 1; }
  echo "$want" >"$marker"
fi

# --- 3. Kafka jars ----------------------------------------------------------------------------------------------
scripts/fetch_kafka.sh

log "ready"
