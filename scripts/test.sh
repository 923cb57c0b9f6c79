#!/usr/bin/env bash
# Set everything up and run the test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# a real browser for the test that renders the validation report headless
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: the browser test will be skipped"
fi
# The package lives under python/, so the installed build (with its compiled
# kernel) is what the tests import.
python3 -m pytest -q -p no:cacheprovider "$@"
