#!/usr/bin/env bash
# test_isa_tiers.sh: run the test suite once per ISA tier, natively and on emulated older x86 CPUs.
#
#   native:   ENGINE_ISA=<tag> for every tier compiled into the build (scalar, avx2, avx512 on x86_64;
#             scalar, neon on aarch64). A tier the CPU cannot run is skipped with the reason printed
#             (this machine has no AVX-512). Before the tests, `python -m engine info` must report that tier.
#   emulated: $ENGINE_SHARED_TOOLS/python-under-cpu --cpu Nehalem and --cpu Haswell, with ENGINE_ISA unset, so
#             the dispatcher reads the emulated CPUID: `python -m engine info` must report scalar under Nehalem
#             (SSE4.2, no AVX) and avx2 under Haswell; then the tests run there (ENGINE_TEST_QUICK=1 unless
#             --full-emulated: emulation is 15-35x slower). Exit 132 from a run = SIGILL = an instruction the
#             emulated CPU lacks leaked outside a kernel the dispatcher chose.
#
# It tests the in-place build in the repository (built first if the extension is missing or older than its
# sources). Tests: tests/ when it has test files, otherwise scripts/wheel_smoke_test.py (said loudly).
#
# Usage: scripts/test_isa_tiers.sh [--quick] [--full-emulated] [--python PY] [--no-build] [--skip-emulation]
#                                  [--cpu MODEL=ISA]... [-h] [-- PYTEST_ARGS...]
#   --quick           ENGINE_TEST_QUICK=1 for the native runs too
#   --full-emulated   full test suite under emulation (default: ENGINE_TEST_QUICK=1 there)
#   --python PY       interpreter (default: python3 on PATH)
#   --no-build        never run build_ext --inplace
#   --skip-emulation  skip the python-under-cpu runs (printed as skipped; default is to fail if the tool is missing)
#   --cpu MODEL=ISA   emulated model and the ISA it must select (repeatable; default Nehalem=scalar Haswell=avx2)
# Environment: ENGINE_SHARED_TOOLS (default $REPO_ROOT/../shared/tools); ENGINE_TEST_SEED passes through.
# Exit status: 0 all ran and passed; 1 a tier failed; 2 usage error; 125 setup problem (no tool, build failed).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=${ENGINE_SHARED_TOOLS:-$REPO_ROOT/../shared/tools}
PY=python3 QUICK=0 FULL_EMU=0 BUILD=1 EMULATE=1
CPUS=()
PYTEST_ARGS=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --full-emulated) FULL_EMU=1 ;;
    --python) [[ $# -ge 2 ]] || { echo "test_isa_tiers: --python needs a value" >&2; exit 2; }; PY=$2; shift ;;
    --no-build) BUILD=0 ;;
    --skip-emulation) EMULATE=0 ;;
    --cpu) [[ $# -ge 2 && $2 == *=* ]] || { echo "test_isa_tiers: --cpu needs MODEL=ISA" >&2; exit 2; }; CPUS+=("$2"); shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; PYTEST_ARGS=("$@"); break ;;
    *) echo "test_isa_tiers: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ ${#CPUS[@]} -gt 0 ]] || CPUS=(Nehalem=scalar Haswell=avx2)

cd "$REPO_ROOT"
PY=$("$PY" -c 'import sys; print(sys.executable)' 2>/dev/null) || { echo "test_isa_tiers: '$PY' does not run" >&2; exit 125; }
unset ENGINE_ISA  # every run below sets it explicitly or must see the real CPU

# --- build in place if needed ---------------------------------------------------------------------------------
EXT_SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
SO=engine/_C/_kernels$EXT_SUFFIX
# Stale = a C/Cython source newer than the extension (what build_ext itself checks, given setup.py's depends).
# engine/_C/_kernels.c is Cython's output (any build of the tree rewrites it), so only the .pyx/.pxd count there.
stale() { [[ ! -f $SO ]] || [[ -n $(find csrc \( -name '*.[ch]' \) -newer "$SO" -print -quit) ]] ||
  [[ -n $(find engine/_C \( -name '*.pyx' -o -name '*.pxd' \) -newer "$SO" -print -quit) ]]; }
if stale; then
  if [[ $BUILD == 0 ]]; then echo "test_isa_tiers: $SO is missing or older than its sources (and --no-build)" >&2; exit 125; fi
  echo "=== build_ext --inplace ($PY) ==="
  t=$SECONDS
  "$PY" setup.py -q build_ext --inplace >/tmp/test_isa_tiers_build.$$.log 2>&1 \
    || { tail -30 /tmp/test_isa_tiers_build.$$.log; rm -f /tmp/test_isa_tiers_build.$$.log; echo "test_isa_tiers: build failed" >&2; exit 125; }
  rm -f /tmp/test_isa_tiers_build.$$.log
  echo "built in $((SECONDS - t)) s"
fi

# --- what to run ----------------------------------------------------------------------------------------------
if [[ -d tests ]] && [[ -n $(find tests -name 'test_*.py' -print -quit) ]]; then
  TESTS=(tests)
else
  echo "NOTE: tests/ has no test files yet: running scripts/wheel_smoke_test.py instead"
  TESTS=(scripts/wheel_smoke_test.py)
fi
PYTEST=("$PY" -m pytest -q -ra -p no:cacheprovider "${TESTS[@]}" "${PYTEST_ARGS[@]}")

RESULTS=()
FAILED=0
record() { RESULTS+=("$(printf '%-22s %-44s %5ss' "$1" "$2" "$3")"); [[ $2 == PASS* || $2 == SKIP* ]] || FAILED=1; }

# The active ISA as the dispatcher decided it (prints `python -m engine info` first, for the log).
ACTIVE_CODE='import engine; print("ACTIVE_ISA=" + engine.cpu_info()["active_isa"])'

# --- native tiers ---------------------------------------------------------------------------------------------
read -r ARCH MAX_ISA COMPILED SUPPORTED < <("$PY" -c 'import engine
i = engine.cpu_info()
print(i["arch"], i["max_isa"], ",".join(i["compiled_isas"]), ",".join(i["supported_isas"]))')
echo "host: $ARCH, CPU max ISA $MAX_ISA; compiled: $COMPILED; runnable here: $SUPPORTED"
declare -A REASON=()
if [[ $ARCH == x86_64 ]]; then
  TIERS=(scalar avx2 avx512)
  REASON[avx2]="the CPU lacks AVX2+FMA+F16C (or the OS does not enable YMM state)"
  REASON[avx512]="the CPU lacks AVX-512 F/BW/DQ/VL (or the OS does not enable ZMM state); CPU max is $MAX_ISA"
elif [[ $ARCH == aarch64 ]]; then
  TIERS=(scalar neon)
else
  TIERS=(scalar)
fi
for isa in "${TIERS[@]}"; do
  echo; echo "=== native, ENGINE_ISA=$isa ==="
  if [[ ,$COMPILED, != *,$isa,* ]]; then
    echo "SKIP: $isa is not compiled into this build (the compiler's probe for it failed)"
    record "native $isa" "SKIP (not compiled into this build)" 0; continue
  fi
  if [[ ,$SUPPORTED, != *,$isa,* ]]; then
    echo "SKIP: ${REASON[$isa]:-the CPU cannot run $isa}"
    record "native $isa" "SKIP (CPU lacks it)" 0; continue
  fi
  t=$SECONDS
  ENGINE_ISA=$isa "$PY" -m engine info
  got=$(ENGINE_ISA=$isa "$PY" -c "$ACTIVE_CODE" | sed -n 's/^ACTIVE_ISA=//p')
  if [[ $got != "$isa" ]]; then
    echo "FAIL: ENGINE_ISA=$isa but engine reports active ISA '$got'"
    record "native $isa" "FAIL (active ISA $got)" $((SECONDS - t)); continue
  fi
  if ENGINE_ISA=$isa ENGINE_TEST_QUICK=$([[ $QUICK == 1 ]] && echo 1 || echo "${ENGINE_TEST_QUICK:-0}") "${PYTEST[@]}"; then
    record "native $isa" "PASS" $((SECONDS - t))
  else
    record "native $isa" "FAIL (pytest exit $?)" $((SECONDS - t))
  fi
done

# --- emulated CPUs (real CPUID, no forcing) -------------------------------------------------------------------
PUC=$TOOLS/python-under-cpu
if [[ $EMULATE == 0 ]]; then
  echo; echo "SKIP emulated CPUs: --skip-emulation given"
  record "emulated" "SKIP (--skip-emulation)" 0
elif [[ $ARCH != x86_64 ]]; then
  echo; echo "SKIP emulated CPUs: python-under-cpu emulates x86_64 models; this host is $ARCH"
  record "emulated" "SKIP (host is $ARCH)" 0
elif [[ ! -x $PUC ]]; then
  echo "test_isa_tiers: $PUC not found; set ENGINE_SHARED_TOOLS or pass --skip-emulation" >&2
  exit 125
else
  for spec in "${CPUS[@]}"; do
    cpu=${spec%%=*} want=${spec#*=}
    echo; echo "=== emulated --cpu $cpu (expects $want) ==="
    t=$SECONDS
    set +e
    # One emulated process prints what `python -m engine info` prints and the active ISA (startup is slow).
    out=$("$PUC" --cpu "$cpu" -- "$PY" -c "from engine.__main__ import print_info; print_info(); $ACTIVE_CODE" 2>&1)
    rc=$?
    set -e
    echo "$out"
    got=$(sed -n 's/^ACTIVE_ISA=//p' <<<"$out")
    if [[ $rc != 0 ]]; then
      [[ $rc == 132 ]] && echo "FAIL: SIGILL under $cpu: an instruction this CPU lacks ran outside the dispatched kernels"
      record "emulated $cpu" "FAIL (import exit $rc)" $((SECONDS - t)); continue
    fi
    if [[ $got != "$want" ]]; then
      echo "FAIL: under $cpu the dispatcher chose '$got', expected '$want'"
      record "emulated $cpu" "FAIL (active ISA $got, want $want)" $((SECONDS - t)); continue
    fi
    set +e
    # Emulation is 15-35x slower: unless --full-emulated, leave out the suites that are numpy code or another
    # runtime (the op semantics in tests/ops, whole models against onnxruntime, the demo's subprocesses); every C
    # kernel they reach is swept at this ISA by tests/kernels, and the executor by test_session and the
    # conformance subset.
    EMU_ARGS=()
    [[ $FULL_EMU == 1 ]] || EMU_ARGS=(--ignore=tests/ops --ignore=tests/test_models.py --ignore=tests/test_demo.py)
    # qemu's AVX2 CPU models mis-run numpy 2.4's own AVX2 loops (strided np.maximum gives wrong values, broadcast
    # arithmetic has crashed): the op-kernel tests, whose references are those numpy loops, run natively at every
    # ISA including avx2 instead, where numpy is trustworthy.
    [[ $FULL_EMU == 1 || $want == scalar ]] || EMU_ARGS+=(--ignore=tests/kernels/test_ops_kernels.py)
    ENGINE_TEST_QUICK=$([[ $FULL_EMU == 1 ]] && echo "${ENGINE_TEST_QUICK:-0}" || echo 1) "$PUC" --cpu "$cpu" -- "${PYTEST[@]}" "${EMU_ARGS[@]}"
    rc=$?
    set -e
    if [[ $rc == 0 ]]; then
      record "emulated $cpu" "PASS (active ISA $got)" $((SECONDS - t))
    else
      [[ $rc == 132 ]] && echo "FAIL: SIGILL under $cpu: an instruction this CPU lacks ran outside the dispatched kernels"
      record "emulated $cpu" "FAIL (pytest exit $rc)" $((SECONDS - t))
    fi
  done
fi

echo; echo "=== summary ($(printf '%s ' "${TESTS[@]}")) ==="
printf '%s\n' "${RESULTS[@]}"
echo "total: $SECONDS s"
if [[ $FAILED == 0 ]]; then echo "test_isa_tiers: OK"; else echo "test_isa_tiers: FAILED"; exit 1; fi
