// Every CUDA kernel family (filter gradient, forward, input gradient) for
// bfloat16_t storage: one translation unit per dtype, so nvcc compiles the
// dtypes in parallel. Framework free.
#include "cc/kernels/cuda/launch_kernels.h"

DWOP_INSTANTIATE_LAUNCHERS(bfloat16_t)
