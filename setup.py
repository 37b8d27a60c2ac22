"""Build: one static library per ISA group, each with its own compiler flags, linked into one extension.

Only files named *_<isa>.c get that ISA's flags (plus csrc/dispatch/table_<isa>.c). The core (dispatch,
thread pool, GEMM driver) is built with baseline flags, so a CPU without AVX never executes an AVX
instruction outside a kernel that the dispatcher chose for it. No -march=native (ENGINE_NATIVE=1 allows it
for local experiments only).
"""
import os
import platform
import re
import subprocess
import sys
import sysconfig
import tempfile
from glob import glob

import Cython
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))

# tag, architectures, gcc/clang flags, a probe intrinsic. Keep in sync with csrc/dispatch/cpu_features.c.
ISA_GROUPS = [
    ("scalar", None, ["-fno-tree-vectorize"], None),
    ("avx2", {"x86_64"}, ["-mavx2", "-mfma", "-mf16c"], "#include <immintrin.h>\nint main(void){__m256 a=_mm256_set1_ps(1);a=_mm256_fmadd_ps(a,a,a);return (int)_mm256_cvtss_f32(a);}"),
    ("avx512", {"x86_64"}, ["-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx2", "-mfma", "-mf16c"],
     "#include <immintrin.h>\nint main(void){__m512 a=_mm512_set1_ps(1);a=_mm512_fmadd_ps(a,a,a);return (int)_mm512_reduce_add_ps(a);}"),
    ("neon", {"aarch64"}, [], "#include <arm_neon.h>\nint main(void){float32x4_t a=vdupq_n_f32(1);a=vfmaq_f32(a,a,a);return (int)vgetq_lane_f32(a,0);}"),
]
COMMON = ["-O3", "-std=c11", "-fvisibility=hidden", "-ffp-contract=off", "-fno-math-errno", "-Wall", "-Wno-unused-function"]


def target_arch():
    """The architecture we compile for: ENGINE_TARGET_ARCH overrides (cross builds), else the host's."""
    arch = os.environ.get("ENGINE_TARGET_ARCH") or sysconfig.get_platform().split("-")[-1] or platform.machine()
    arch = arch.lower()
    return {"amd64": "x86_64", "arm64": "aarch64", "x64": "x86_64"}.get(arch, arch)


def probe(code, flags):
    """True if the C compiler builds `code` with `flags` (an old compiler lacking an ISA drops the group)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "p.c")
        with open(src, "w") as f:
            f.write(code)
        r = subprocess.run(cc.split() + flags + ["-c", src, "-o", os.path.join(d, "p.o")], capture_output=True)
        return r.returncode == 0


arch = target_arch()
groups = []
for tag, arches, flags, code in ISA_GROUPS:
    if arches is not None and arch not in arches:
        continue
    if code is not None and not probe(code, flags):
        print(f"engine: the compiler cannot build {tag} code; leaving that ISA group out", file=sys.stderr)
        continue
    groups.append((tag, flags))

extra = ["-march=native"] if os.environ.get("ENGINE_NATIVE") == "1" else []
# Any header change rebuilds every library (build_clib has no per-file dependency scan).
HEADERS = sorted(glob("csrc/include/eng/*.h") + glob("csrc/simd/*.h") + glob("csrc/kernels/*/*.h")
                 + glob("csrc/kernels/*/*.inc"))  # ops_simd.inc is included by the ops_<isa>.c files
# Link order for static archives: a library before the ones it uses. The core references every ISA
# table; SIMD files may call scalar helpers; so core, then highest ISA first, scalar last.
libraries = [("eng_core", {"sources": ["csrc/dispatch/cpu_features.c", "csrc/dispatch/dispatch.c",
                                       "csrc/runtime/threadpool.c", "csrc/runtime/workspace.c",
                                       "csrc/kernels/gemm/gemm_driver.c",
                                       "csrc/kernels/ops/ops_driver.c",
                                       "csrc/kernels/sim/sim_driver.c", "csrc/kernels/conv/conv_driver.c",
                                       "csrc/kernels/convt/convt_driver.c", "csrc/kernels/wino/wino_driver.c"],
                           "include_dirs": ["csrc/include"], "cflags": COMMON + extra,
                           "obj_deps": {"": HEADERS}, "macros": [(f"ENG_COMPILED_{t.upper()}", "1") for t, _ in groups]})]
for tag, flags in reversed(groups):  # highest ISA first, so static-archive link order resolves
    sources = sorted(glob(f"csrc/kernels/*/*_{tag}.c")) + [f"csrc/dispatch/table_{tag}.c"]
    libraries.append((f"eng_{tag}", {"sources": sources, "include_dirs": ["csrc/include"], "cflags": COMMON + flags + extra,
                                     "obj_deps": {"": HEADERS}}))

compiled = [(f"ENG_COMPILED_{tag.upper()}", "1") for tag, _ in groups]

debug = os.environ.get("ENGINE_CYTHON_DEBUG") == "1"
# freethreading_compatible: the module keeps no mutable Python-level state after import (init() runs under the
# import lock) and every kernel already runs with the GIL released, so the C side (dispatch table, thread pool
# with its run_mu queue) is already exercised by concurrent callers; 3.14t wheels import without re-enabling
# the GIL. select_isa() stays "tests only, not thread-safe", with or without a GIL.
directives = {"language_level": 3, "boundscheck": debug, "wraparound": debug, "cdivision": not debug,
              "initializedcheck": debug}
# Cython < 3.1 rejects the directive (Debian's 0.29/3.0 in the aarch64-python rootfs); wheels always build with
# >= 3.1 (pyproject.toml [build-system]), and an older Cython cannot target free-threaded CPython anyway.
if tuple(int(p) for p in re.findall(r"\d+", Cython.__version__)[:2]) >= (3, 1):
    directives["freethreading_compatible"] = True
ext = Extension(
    "engine._C._kernels",
    ["engine/_C/_kernels.pyx"],
    include_dirs=["csrc/include", np.get_include()],
    # NPY_TARGET_VERSION: wheels built against numpy 2.x headers stay importable with numpy >= 1.23, the floor
    # declared in pyproject.toml; pinned here so a later numpy raising its default cannot silently break it.
    define_macros=compiled + [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"),
                              ("NPY_TARGET_VERSION", "NPY_1_23_API_VERSION")],
    extra_compile_args=["-O2", "-fvisibility=hidden"],
    # The kernels reach the extension through static libraries that build_ext does not track: without this,
    # editing a csrc/ file and re-running `build_ext --inplace` rebuilt the libraries but kept the old .so.
    depends=sorted(glob("csrc/**/*.[ch]", recursive=True)),
    # -lm goes last (extra_link_args follow the static archives): `libraries=["m"]` put -lm before -leng_*, so
    # with as-needed linking libm was dropped and expf/erff/tanhf stayed unversioned undefined symbols that
    # only resolved because the interpreter happened to have libm loaded.
    extra_link_args=["-pthread", "-lm"],
)


# Release builds (a wheel: `python -m build`, `pip install .`, cibuildwheel) carry no debug info: Python's
# default CFLAGS contain -g, which makes the extension about 5x bigger. -g0 comes after them, so it wins; it
# changes no code generation. Local `build_ext --inplace` keeps -g for gdb/perf. ENGINE_DEBUG_INFO=1 keeps -g in
# a wheel, ENGINE_DEBUG_INFO=0 drops it everywhere.
RELEASE_CFLAGS = ["-g0"]


def is_release(dist) -> bool:
    env = os.environ.get("ENGINE_DEBUG_INFO")
    if env in ("0", "1"):
        return env == "0"
    return any(c in ("bdist_wheel", "bdist", "install") for c in dist.commands)


class BuildClib(build_clib):
    """build_clib that appends the release flags to every per-ISA library (their ISA flags stay as they are)."""

    def build_libraries(self, libraries):
        if is_release(self.distribution):
            libraries = [(name, dict(info, cflags=list(info.get("cflags", [])) + RELEASE_CFLAGS))
                         for name, info in libraries]
        super().build_libraries(libraries)


class BuildExtWithLibs(build_ext):
    """build_ext that first builds the per-ISA static libraries, so `build_ext --inplace` works alone."""

    def run(self):
        self.run_command("build_clib")
        clib = self.get_finalized_command("build_clib")
        libs = [os.path.join(clib.build_clib, f"lib{name}.a") for name, _ in libraries]
        for e in self.extensions:  # relink when a kernel library changed, not only when the .pyx did
            e.depends = list(e.depends) + [p for p in libs if os.path.exists(p)]
        super().run()

    def build_extensions(self):
        if is_release(self.distribution):
            # The interpreter's LDSHARED may carry its own lib dir as -Wl,-rpath (pyenv, --enable-shared builds);
            # a wheel must not point the loader at the build machine's paths. Nothing here needs an rpath.
            for attr in ("linker_so", "linker_so_cxx"):
                cmd = getattr(self.compiler, attr, None)
                if isinstance(cmd, list):
                    setattr(self.compiler, attr, [a for a in cmd if not a.startswith(("-Wl,-rpath", "-Wl,-R"))])
        super().build_extensions()

    def build_extension(self, ext):
        if is_release(self.distribution):
            ext.extra_compile_args = list(ext.extra_compile_args) + RELEASE_CFLAGS
        super().build_extension(ext)


setup(libraries=libraries, ext_modules=cythonize([ext], compiler_directives=directives),
      cmdclass={"build_clib": BuildClib, "build_ext": BuildExtWithLibs})
