#!/usr/bin/env bash
# One-shot set-up on a fresh machine: system packages, the venv, the project with all extras.
# Idempotent: re-running installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
# Debian packages the tests and the demo start themselves (never as system services).
APT_PACKAGES=(${EDGELENS_APT_PACKAGES:-redis-server mosquitto chromium chromium-driver postgresql})

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e '.[dev]'

# A real Milvus server for the vector-database tests and benchmark: PyPI's milvus package is
# the standalone server (with embedded etcd). It pins old client libraries, so it lives in
# a venv of its own; tests find it through EDGELENS_MILVUS_SERVER (set by the Makefile).
MILVUS_VENV=${MILVUS_VENV:-.venv-milvus}
if [ ! -x "$MILVUS_VENV/bin/milvus-server" ]; then
  "$PYTHON" -m venv "$MILVUS_VENV"
  "$MILVUS_VENV/bin/python" -m pip install -q 'milvus==2.3.5'
fi
