/* dwop's C ABI: the framework-free kernels behind a stable extern "C"
 * interface, loaded with ctypes by the tests, the sanitizer build and the GPU
 * check, none of which need TensorFlow.
 *
 * Every entry point validates its arguments with the same code as the
 * TensorFlow op (cc/kernels/geometry.h) and returns a dwop_status; on failure
 * it writes a NUL-terminated message into `error` (at most error_size bytes,
 * error may be NULL) and leaves the output untouched. */
#ifndef DWOP_CC_C_API_DWOP_C_H_
#define DWOP_CC_C_API_DWOP_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; only these names are exported. */
#define DWOP_EXPORT __attribute__((visibility("default")))

/* Bumped whenever a declaration below changes. */
#define DWOP_ABI_VERSION 1

typedef enum dwop_status {
  DWOP_OK = 0,
  DWOP_INVALID_ARGUMENT = 1,
  DWOP_RESOURCE_EXHAUSTED = 2,
  DWOP_INTERNAL = 3,
  DWOP_UNAVAILABLE = 4, /* e.g. CUDA entry points in a build without CUDA */
} dwop_status;

typedef enum dwop_dtype {
  DWOP_HALF = 0,
  DWOP_BFLOAT16 = 1,
  DWOP_FLOAT = 2,
  DWOP_DOUBLE = 3,
} dwop_dtype;

/* One DepthwiseConv2dBackpropFilter call, with the op's inputs and attributes
 * spelled as TensorFlow spells them. Shapes are in data_format order;
 * filter_sizes is the 1-D filter_sizes tensor. */
typedef struct dwop_problem {
  dwop_dtype dtype;
  const int64_t* input_shape;
  int32_t input_rank;
  const int64_t* filter_sizes;
  int32_t num_filter_sizes;
  const int64_t* out_backprop_shape;
  int32_t out_backprop_rank;
  const int64_t* strides;
  int32_t num_strides;
  const char* padding;     /* "SAME", "VALID" or "EXPLICIT" */
  const int64_t* explicit_paddings;
  int32_t num_explicit_paddings;
  const char* data_format; /* "NHWC" or "NCHW" */
  const int64_t* dilations;
  int32_t num_dilations;
} dwop_problem;

/* The resolved problem, as dwop_validate reports it. */
typedef struct dwop_geometry {
  int64_t batch, in_rows, in_cols, in_depth, depth_multiplier;
  int64_t filter_rows, filter_cols, out_rows, out_cols;
  int64_t stride_rows, stride_cols, dilation_rows, dilation_cols;
  int64_t pad_top, pad_left;
  int32_t nchw; /* 0 for NHWC, 1 for NCHW */
} dwop_geometry;

/* DWOP_ABI_VERSION of the loaded library. */
DWOP_EXPORT int32_t dwop_abi_version(void);

/* Validates `problem` without touching any buffer; on success fills
 * `geometry` (may be NULL). */
DWOP_EXPORT dwop_status dwop_validate(const dwop_problem* problem, dwop_geometry* geometry,
                          char* error, size_t error_size);

/* The fast CPU kernel on host buffers, dense in data_format order;
 * filter_backprop is [KH, KW, C, M]. Runs on num_threads threads (<= 0: one
 * per hardware thread). Bitwise identical for any num_threads. */
DWOP_EXPORT dwop_status dwop_filter_grad_cpu(const dwop_problem* problem, const void* input,
                                 const void* out_backprop,
                                 void* filter_backprop, int32_t num_threads,
                                 char* error, size_t error_size);

/* The instruction-set level dwop_filter_grad_cpu uses now: "avx512", "avx2"
 * or "generic" (a static string). The CPU's best level unless the
 * environment variable DWOP_CPU_ISA, read on every call, forces a lower one. */
DWOP_EXPORT const char* dwop_cpu_isa(void);

/* The naive reference kernel (cc/kernels/reference.h); single-threaded. */
DWOP_EXPORT dwop_status dwop_filter_grad_reference(const dwop_problem* problem,
                                       const void* input,
                                       const void* out_backprop,
                                       void* filter_backprop, char* error,
                                       size_t error_size);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* DWOP_CC_C_API_DWOP_C_H_ */
