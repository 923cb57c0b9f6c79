#!/usr/bin/env bash
# Set everything up and run the test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The package lives under python/, so the installed build (with its compiled
# kernel) is what the tests import.
python3 -m pytest -q -p no:cacheprovider "$@"
