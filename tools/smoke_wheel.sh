#!/usr/bin/env bash
# Install VAK as a user would and follow the README's quick start as printed.
#
# Builds the wheel from this tree, installs it (with the `build` extra: Zig from
# PyPI) into a fresh virtualenv in a temporary directory outside the checkout,
# then, from an empty directory there, runs the README block that follows the
# marker "smoke: quick start" line by line with `bash -e`. The block covers
# `vak demo`, `vak init`, `vak skill new/build/test/sign`, `vak trust add/list`,
# `vak run` and `vak-audit verify`. Finally it proves that no file of the
# checkout was reachable: the installed package lives in the venv.
#
#   tools/smoke_wheel.sh            # uses python3; PYTHON=... to pick another
#   KEEP=1 tools/smoke_wheel.sh     # keep the temporary directory and print it
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vak-smoke.XXXXXX")
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$WORK"' EXIT; else echo "smoke: keeping $WORK"; fi
case "$WORK" in "$REPO"/*) echo "smoke: $WORK is inside the checkout" >&2; exit 2;; esac

echo "smoke: building the wheel"
# from a clean copy of the tree: setuptools' build/ directory could hold stale files
mkdir "$WORK/src"
tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude='*.wasm' --exclude=__pycache__ -cf - . | tar -C "$WORK/src" -xf -
"$PY" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/dist" "$WORK/src" >/dev/null
WHEEL=$(ls "$WORK"/dist/vak-*.whl)

echo "smoke: installing $(basename "$WHEEL")[build] into a fresh virtualenv"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check "$WHEEL[build]"

# the README block, exactly as printed (tests/test_readme.py checks the marker exists)
BLOCK=$(awk '/smoke: quick start/ {found=1; next}
             found && /^```/ {if (inblock) exit; inblock=1; next}
             inblock {print}' "$REPO/README.md")
if [[ -z "$BLOCK" ]]; then echo "smoke: no quick-start block in README.md" >&2; exit 2; fi

mkdir "$WORK/empty"
cd "$WORK/empty"
export PATH="$WORK/venv/bin:$PATH" VIRTUAL_ENV="$WORK/venv"
unset PYTHONPATH
echo "smoke: running the README quick start in $PWD"
bash -euo pipefail -x -c "$BLOCK"

where=$("$WORK/venv/bin/python" -c 'import vak, os; print(os.path.dirname(vak.__file__))')
case "$where" in
  "$WORK/venv"/*) ;;
  *) echo "smoke: vak was imported from $where, not from the virtualenv" >&2; exit 1;;
esac
echo "smoke: OK (wheel $(basename "$WHEEL"), package at $where)"
