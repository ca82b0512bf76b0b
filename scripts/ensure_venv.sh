#!/usr/bin/env bash
# One virtual environment per checkout (.venv, gitignored); reinstalled when pyproject changes.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  # torch and torchvision are pinned in pyproject.toml; pip takes them from this machine's disk.
  echo "installing dependencies into .venv (torch comes from this machine's disk)" >&2
  if ! .venv/bin/pip install -q -e ".[test]" >.venv/install.log 2>&1; then
    tail -30 .venv/install.log >&2
    exit 1
  fi
  rm -f .venv/.installed-*
  touch "$stamp"
fi
