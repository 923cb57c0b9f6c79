#!/usr/bin/env bash
# Install everything noahtibet needs on a fresh Debian machine and build the package.
# Idempotent: re-running only rebuilds the package.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v gfortran >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq gfortran >/dev/null
fi
python3 -m pip install --quiet --upgrade pip
python3 -m pip install --quiet ".[test,mpi]"
