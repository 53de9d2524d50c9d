#!/usr/bin/env bash
# Create the Rasa NLU server's Python 3.10 virtual environment once, cached under
# $TECHBOT_CACHE_DIR keyed by the hash of its requirement files, and link it as .rasa-venv.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${TECHBOT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/techbot}
key=$(cat nlu/requirements-rasa.txt nlu/requirements-rasa.lock | sha256sum | cut -c1-16)
venv="$cache/rasa-venv-$key"

find_python310() {
  for candidate in "${RASA_PYTHON:-}" python3.10 "$(command -v pyenv >/dev/null && pyenv root)"/versions/3.10*/bin/python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

# A venv cannot be moved (its scripts hard-code their path), so it is built in place and a
# marker written last says it is complete; a half-built one from an interrupted run is redone.
if [ ! -f "$venv/.complete" ]; then
  py=$(find_python310) || {
    echo "Rasa 3.6 needs Python 3.10, and none was found. Install it (e.g. 'pyenv install 3.10') or set RASA_PYTHON=/path/to/python3.10." >&2
    exit 1
  }
  echo "creating the Rasa environment with $py in $venv (once; takes a few minutes)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$py" -m venv "$venv"
  log="$cache/rasa-install.log"
  { "$venv/bin/pip" install --upgrade pip &&
    "$venv/bin/pip" install -r nlu/requirements-rasa.txt -c nlu/requirements-rasa.lock
  } >"$log" 2>&1 || { tail -n 30 "$log" >&2; echo "installing Rasa failed; the whole log is in $log" >&2; exit 1; }
  "$venv/bin/rasa" --version >/dev/null 2>&1 || { echo "the new Rasa environment does not start" >&2; exit 1; }
  touch "$venv/.complete"
fi
ln -sfn "$venv" .rasa-venv
