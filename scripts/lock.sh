#!/usr/bin/env bash
# Regenerate the pinned, hashed lock files from pyproject.toml (needs `uv`: pip install uv).
set -euo pipefail
cd "$(dirname "$0")/.."
common=(--universal --generate-hashes --python-version 3.11 --quiet)
uv pip compile pyproject.toml "${common[@]}" -o requirements/main.lock
uv pip compile pyproject.toml --extra dev "${common[@]}" -o requirements/dev.lock
