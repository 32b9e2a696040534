// What `python -m dwop` asks the op library about itself, read with ctypes
// from dwop/_dwop_ops.so after TensorFlow has loaded it. Plain C functions, no
// op: they describe the build, not a computation.
#include "cc/kernels/cpu/cpu.h"

extern "C" {

// The CPU kernels' instruction-set level for the next call: "avx512", "avx2"
// or "generic" (DWOP_CPU_ISA, read on every call, can force a lower one).
__attribute__((visibility("default"))) const char* dwop_op_library_cpu_isa() {
  return ::dwop::CpuIsaName();
}

// 1 when the CUDA kernels are compiled in (nvcc was found at build time and
// DWOP_CUDA was not 0), else 0.
__attribute__((visibility("default"))) int dwop_op_library_cuda_built() {
#ifdef DWOP_WITH_CUDA
  return 1;
#else
  return 0;
#endif
}

}  // extern "C"
