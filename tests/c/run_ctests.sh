#!/usr/bin/env bash
# run_ctests.sh: build tests/c/test_kernels.c against the C sources and run it, in one or more modes.
#
#   tests/c/run_ctests.sh native            # this machine's ISA groups, setup.py's per-ISA flags
#   tests/c/run_ctests.sh avx512-emu        # AVX-512 group through SIMDe (x86-64 host without AVX-512)
#   tests/c/run_ctests.sh aarch64           # cross-compiled, run under qemu-aarch64 (cortex-a53, neoverse-n1)
#   tests/c/run_ctests.sh native avx512-emu aarch64
#
# Per-ISA flags are read from ISA_GROUPS in setup.py, so the tests build each group the way the wheel does
# (scalar with -fno-tree-vectorize, avx2 with -mavx2 -mfma -mf16c, ...); core files get baseline flags.
# Environment: CC (native compiler, default cc), ENGINE_SHARED_TOOLS (default $REPO_ROOT/../shared/tools),
# ENG_TEST_QUICK (forced to 1 under emulation), ENGINE_TEST_SEED, CTEST_BUILD_DIR (default build/ctests).
# Exit status: 0 if every mode passed, 1 otherwise (2: usage).
set -uo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${ENGINE_SHARED_TOOLS:-$REPO_ROOT/../shared/tools}
BUILD=${CTEST_BUILD_DIR:-$REPO_ROOT/build/ctests}
CC=${CC:-cc}
COMMON=(-O2 -std=c11 -ffp-contract=off -fno-math-errno -pthread -Wall -Wno-unused-function -I"$REPO_ROOT/csrc/include")
CORE_SRCS=(csrc/dispatch/cpu_features.c csrc/dispatch/dispatch.c csrc/runtime/threadpool.c csrc/runtime/workspace.c
           csrc/kernels/gemm/gemm_driver.c csrc/kernels/ops/ops_driver.c csrc/kernels/sim/sim_driver.c
           csrc/kernels/conv/conv_driver.c csrc/kernels/convt/convt_driver.c csrc/kernels/wino/wino_driver.c)

usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
[ $# -gt 0 ] || { usage; exit 2; }
for m in "$@"; do
  case $m in native|avx512-emu|aarch64) ;; -h|--help) usage; exit 0 ;; *) echo "run_ctests.sh: unknown mode '$m'" >&2; usage >&2; exit 2 ;; esac
done
cd "$REPO_ROOT" || exit 2
mkdir -p "$BUILD"

# Flags of one ISA group, from setup.py's ISA_GROUPS (tag, arches, flags, probe).
isa_flags() {
  python3 - "$1" <<'EOF'
import ast, sys
tree = ast.parse(open("setup.py").read())
for node in tree.body:
    if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "ISA_GROUPS":
        for row in ast.literal_eval(node.value):
            if row[0] == sys.argv[1]:
                print(" ".join(row[2]))
                sys.exit(0)
sys.exit("setup.py has no ISA group " + sys.argv[1])
EOF
}

# Sources of one ISA group, as setup.py globs them.
group_srcs() { ls csrc/kernels/*/*_"$1".c 2>/dev/null; echo "csrc/dispatch/table_$1.c"; }

# compile OUTDIR "FLAGS..." SRC...  -> object files listed in OBJS
OBJS=()
compile() {
  local out=$1 flags=$2; shift 2
  local s o
  for s in "$@"; do
    o="$out/$(echo "$s" | tr / _).o"
    # shellcheck disable=SC2086  # flags are intentionally word-split
    $CC_USE "${COMMON[@]}" $flags -c "$s" -o "$o" || return 1
    OBJS+=("$o")
  done
}

# Every global symbol an ISA group defines must carry its _<isa> suffix: a helper exported without one could
# be resolved by the linker for a caller of another ISA and run, e.g., AVX-512 code on an AVX2 CPU.
check_symbols() {
  local tag=$1; shift
  local bad
  bad=$(nm -g --defined-only "$@" 2>/dev/null | awk -v t="_$tag" 'NF == 3 && substr($3, length($3) - length(t) + 1) != t {print $3}')
  if [ -n "$bad" ]; then echo "group $tag exports symbols without the _$tag suffix:" $bad; return 1; fi
  echo "symbols: every global in the $tag group ends in _$tag"
}

mode_native() {
  local arch groups defs out=$BUILD/native
  arch=$(uname -m)
  case $arch in
    x86_64|amd64) groups=(scalar avx2 avx512) ;;
    aarch64|arm64) groups=(scalar neon) ;;
    *) groups=(scalar) ;;
  esac
  rm -rf "$out" && mkdir -p "$out"
  CC_USE=$CC OBJS=()
  defs=""
  for g in "${groups[@]}"; do
    local gf
    gf=$(isa_flags "$g") || return 1
    # shellcheck disable=SC2046
    local first=${#OBJS[@]}
    # shellcheck disable=SC2046
    compile "$out" "$gf" $(group_srcs "$g") || { echo "compile of group $g failed"; return 1; }
    check_symbols "$g" "${OBJS[@]:$first}" || return 1
    if [ "$g" = avx512 ] && command -v objdump >/dev/null; then  # the group's flags really produce AVX-512 code
      [ "$(objdump -d "${OBJS[@]:$first}" | grep -c zmm)" -gt 0 ] || { echo "avx512 group objects contain no zmm instruction"; return 1; }
      echo "avx512 group: zmm instructions present"
    fi
    defs+=" -DENG_COMPILED_${g^^}"
    [ "$g" = scalar ] || defs+=" -DENG_TEST_${g^^}"
  done
  compile "$out" "$defs" "${CORE_SRCS[@]}" tests/c/test_kernels.c tests/c/test_sim.c tests/c/test_runtime.c || return 1
  $CC "${COMMON[@]}" "${OBJS[@]}" -o "$out/test_kernels" -lm || return 1
  "$out/test_kernels"
}

# The AVX-512 group compiled against SIMDe (ENG_SIMDE_EMULATION), which implements _mm512_* with AVX2, so
# the AVX-512 kernels' logic runs on a CPU without AVX-512 (and the AVX2 group's AVX-VNNI path, through SIMDe's
# vpdpbusd). The real build never defines ENG_SIMDE_EMULATION.
mode_avx512_emu() {
  local out=$BUILD/avx512-emu
  if [ ! -f /usr/include/simde/x86/avx512.h ] && ! echo '#include <simde/x86/avx512.h>' | $CC -E -x c - >/dev/null 2>&1; then
    echo "SIMDe headers not found (apt-get install libsimde-dev)"; return 1
  fi
  case $(uname -m) in x86_64|amd64) ;; *) echo "avx512-emu needs an x86-64 host"; return 1 ;; esac
  rm -rf "$out" && mkdir -p "$out"
  CC_USE=$CC OBJS=()
  local sf af
  sf=$(isa_flags scalar) && af=$(isa_flags avx2) || return 1
  # shellcheck disable=SC2046
  compile "$out" "$sf" $(group_srcs scalar) || return 1
  # shellcheck disable=SC2046
  compile "$out" "$af -DENG_SIMDE_EMULATION" $(group_srcs avx2) || return 1  # SIMDe only for the AVX-VNNI path
  # shellcheck disable=SC2046
  compile "$out" "-mavx2 -mfma -mf16c -DENG_SIMDE_EMULATION -Wno-psabi" $(group_srcs avx512) || return 1
  compile "$out" "-DENG_COMPILED_SCALAR -DENG_COMPILED_AVX2 -DENG_COMPILED_AVX512 -DENG_TEST_AVX2 -DENG_TEST_AVX512 -DENG_TEST_FORCE" \
    "${CORE_SRCS[@]}" tests/c/test_kernels.c tests/c/test_sim.c tests/c/test_runtime.c || return 1
  $CC "${COMMON[@]}" "${OBJS[@]}" -o "$out/test_kernels" -lm || return 1
  "$out/test_kernels" avx512 || return 1
  echo "-- again with the VNNI int8 paths: AVX512-VNNI and AVX-VNNI (ENG_TEST_FORCE_VNNI=1; SIMDe's vpdpbusd)"
  ENG_TEST_FORCE_VNNI=1 "$out/test_kernels" avx2 avx512
}

# Every source (scalar, neon, core) with the same AArch64 baseline flags; NEON needs no extra flag there.
mode_aarch64() {
  local tool=$TOOLS/cross-aarch64-ctest
  [ -x "$tool" ] || { echo "missing $tool (set ENGINE_SHARED_TOOLS)"; return 1; }
  local srcs
  # shellcheck disable=SC2207
  srcs=($(group_srcs scalar) $(group_srcs neon) "${CORE_SRCS[@]}" tests/c/test_kernels.c tests/c/test_sim.c tests/c/test_runtime.c)
  ENG_TEST_QUICK=${ENG_TEST_QUICK:-1} "$tool" --cflags "-std=c11 -ffp-contract=off -fno-math-errno -pthread" \
    -I csrc/include -DENG_COMPILED_SCALAR -DENG_COMPILED_NEON -DENG_TEST_NEON \
    --cpu cortex-a53 --cpu neoverse-n1 --timeout 600 -o "$BUILD/test_kernels-aarch64" "${srcs[@]}"
}

declare -A RESULT TIME
status=0
for m in "$@"; do
  echo "===== run_ctests: $m"
  t0=$EPOCHREALTIME
  case $m in
    native) mode_native ;;
    avx512-emu) mode_avx512_emu ;;
    aarch64) mode_aarch64 ;;
  esac
  rc=$?
  TIME[$m]=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  if [ $rc = 0 ]; then RESULT[$m]=PASS; else RESULT[$m]="FAIL (exit $rc)"; status=1; fi
  echo "===== run_ctests: $m ${RESULT[$m]} in ${TIME[$m]}s"
done
echo "===== run_ctests summary"
for m in "$@"; do printf '  %-11s %-16s %ss\n' "$m" "${RESULT[$m]}" "${TIME[$m]}"; done
exit $status
