#!/usr/bin/env bash
# Create ./.venv (if missing) and install the tested stack plus morphmlp_mm
# (editable). Re-running is cheap: pip is skipped while requirements/tests.txt
# and setup.py are unchanged. PYTHON selects the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.morphmlp_mm-stamp
want=$(cat requirements/tests.txt setup.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # pip's "Location ... is ignored" lines come from this machine's pip config.
  .venv/bin/pip install -q -r requirements/tests.txt 2>&1 | grep -v "^WARNING: Location" || true
  test "${PIPESTATUS[0]}" -eq 0
  .venv/bin/pip install -q --no-deps --no-build-isolation -e . 2>&1 | grep -v "^WARNING: Location" || true
  test "${PIPESTATUS[0]}" -eq 0
  .venv/bin/pip check
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import morphmlp_mm; print('morphmlp_mm', morphmlp_mm.__version__, 'registered:', morphmlp_mm.REGISTERED)"
