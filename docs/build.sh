#!/usr/bin/env bash
# Build the documentation (mkdocs.yml, docs/) with every warning an error, into a temporary
# folder that is removed afterwards. Exits non-zero on any warning: a broken link or anchor, a
# page missing from the nav, a link to a file outside docs/.
#
#   bash docs/build.sh                                  the pinned mkdocs in a fresh virtual environment
#   DOCS_PYTHON=/path/to/venv/bin/python bash docs/build.sh   a Python that already has docs/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

py=${DOCS_PYTHON:-}
if [ -z "$py" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/python" -m pip install -q -r docs/requirements.txt
  py="$work/venv/bin/python"
fi
"$py" -m mkdocs --version
# --strict: a warning fails the build. Not -q: with it, mkdocs 1.6.1 exits 0 despite warnings.
"$py" -m mkdocs build --strict --clean --config-file mkdocs.yml --site-dir "$work/site"
echo "docs: built without warnings ($(find "$work/site" -name '*.html' | wc -l) HTML files)"
