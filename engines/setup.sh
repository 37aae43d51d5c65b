#!/usr/bin/env bash
# Makes target/venv, the Python the CRI scenarios run with: Debian's
# python3 plus grpcio and the CRI client (engines/requirements.txt).
# Idempotent: a venv that already imports them is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv
check() { "$venv/bin/python" -c 'import grpc, cri_api.v1.api_pb2' 2>/dev/null; }
if [ -x "$venv/bin/python" ] && check; then
  exit 0
fi
python=/usr/bin/python3
[ -x "$python" ] || python=python3
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r engines/requirements.txt
check || { echo "engines/setup.sh: $venv cannot import the CRI client" >&2; exit 1; }
