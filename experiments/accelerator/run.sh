#!/usr/bin/env bash
# The accelerator measurements of issue 17 in one command (README.md beside this file):
#   experiments/accelerator/run.sh [--small] OUT_DIR [--budget S] [--work DIR]
# 1. Installs the wheels of experiments/accelerator/wheels (gymnax, tyro and the pure-Python packages they
#    need that the machine lacks) into a folder of their own (PGJAX_SITE, default /tmp/pgjax-accelerator-site)
#    with no index and no dependencies, put first on PYTHONPATH: the machine's JAX is never touched.
#    No wheels there: the install is skipped (the packages must already be importable).
# 2. Uses pgjax from this checkout through PYTHONPATH (nothing is built or installed).
# 3. Runs ladder.py, which writes OUT_DIR/accelerator.json, bench.json and steps.log step by step.
# PYTHON chooses the interpreter (default python3); PGJAX_WHEELS the wheels folder.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
wheels="${PGJAX_WHEELS:-$here/wheels}"
if compgen -G "$wheels/*.whl" >/dev/null; then
  site="${PGJAX_SITE:-/tmp/pgjax-accelerator-site}"
  echo "install: $(cd "$wheels" && echo *.whl) into $site (no index, no dependencies)"
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$wheels"/*.whl || { echo "error: installing the wheels of $wheels failed" >&2; exit 2; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "install: skipped, no wheels in $wheels (gymnax and tyro must already be importable)"
fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
"$python" -c "import gymnax, tyro, pgjax.commands.shared" || {
  echo "error: gymnax, tyro or pgjax cannot be imported; fill $wheels as its README.md says" >&2; exit 2; }
exec "$python" "$here/ladder.py" "$@"
