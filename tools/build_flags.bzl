"""dwop's compiler flags, declared once.

Plain Starlark (lists, dicts, one function), which is also plain Python:
Bazel loads it (BUILD, tools/defs.bzl), and the Makefile reads it through
tools/build_flags.py, which writes build/flags.mk. tests/build_flags_test.py
checks that both builds compile every source with these flags.
"""

# The framework-free kernels and the C ABI (no TensorFlow include path, ever).
# The Makefile adds its build mechanics (-fPIC -I. -MMD -MP); Bazel adds
# -fPIC itself (--force_pic).
KERNEL_COPTS = [
    "-std=c++17",
    "-fvisibility=hidden",
    "-Wall",
    "-Wextra",
    "-Werror=return-type",
]

# Optimisation of the kernels and the CUDA code (the Makefile's CXXFLAGS and
# NVCC_FLAGS default to it; `make sanitize` overrides CXXFLAGS).
OPT_COPTS = ["-O3"]

# Kernel sources with flags of their own (glob patterns under cc/kernels, one
# "*" at most): the CPU kernels once per ISA level (cpu/isa.cc dispatches at
# run time; nothing else gets -m flags) and the CUDA emulator, a test tool, at
# -O1 to keep its compile time down.
KERNEL_SOURCE_COPTS = {
    "cpu/*_avx512.cc": [
        "-mavx512f",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx512dq",
        "-mavx2",
        "-mfma",
        "-mf16c",
    ],
    "cpu/*_avx2.cc": [
        "-mavx2",
        "-mfma",
        "-mf16c",
    ],
    "cuda/emulator.cc": ["-O1"],
}

# cc/kernels/cuda/*.cu.cc, compiled by nvcc for these GPUs.
CUDA_GPU_ARCHS = [
    "sm_80",
    "sm_90",
    "compute_90",  # PTX for later GPUs
]

CUDA_COPTS = [
    "-std=c++17",
    "--threads=0",  # the architectures compile in parallel
    "-Xcompiler=-fPIC,-fvisibility=hidden,-Wall",
]

def gencode_flag(arch):
    """nvcc's flag for one entry of CUDA_GPU_ARCHS: sm_XY is machine code for
    that GPU, compute_XY PTX for later ones."""
    number = arch.split("_")[1]
    return "-gencode=arch=compute_%s,code=%s" % (number, arch)
