// Every CUDA kernel family (filter gradient, forward, input gradient) for
// half_t storage: one translation unit per dtype, so nvcc compiles the dtypes
// in parallel. Framework free.
#include "cc/kernels/cuda/launch_kernels.h"

DWOP_INSTANTIATE_LAUNCHERS(half_t)
