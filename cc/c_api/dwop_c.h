/* dwop's C ABI: the framework-free kernels behind a stable extern "C"
 * interface, loaded with ctypes by the tests, the sanitizer build and the GPU
 * check, none of which need TensorFlow.
 *
 * Every entry point validates its arguments with the same code as the
 * TensorFlow op (cc/kernels/common/geometry.h) and returns a dwop_status; on
 * failure it writes a NUL-terminated message into `error` (at most error_size
 * bytes, error may be NULL). A call refused by validation leaves the output
 * untouched; after a failure while computing (out of memory, a CUDA error)
 * its contents are unspecified. */
#ifndef DWOP_CC_C_API_DWOP_C_H_
#define DWOP_CC_C_API_DWOP_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; only these names are exported.
 */
#define DWOP_EXPORT __attribute__((visibility("default")))

/* Bumped whenever a declaration below changes. */
#define DWOP_ABI_VERSION 2

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

/* One depthwise convolution problem, with the ops' inputs and attributes
 * spelled as TensorFlow spells them; it serves all three ops. Shapes are in
 * data_format order:
 *   input_shape         the input's shape (the input gradient's input_sizes)
 *   filter_sizes        the filter's shape [KH, KW, C, M] (the filter
 *                       gradient's filter_sizes tensor)
 *   out_backprop_shape  out_backprop's shape, which is the forward's output
 *                       shape: the forward computes it, and checks it when
 *                       given (out_backprop_rank > 0). */
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
  const char* padding; /* "SAME", "VALID" or "EXPLICIT" */
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
DWOP_EXPORT dwop_status dwop_validate(const dwop_problem* problem,
                                      dwop_geometry* geometry, char* error,
                                      size_t error_size);

/* The fast CPU kernel on host buffers, dense in data_format order;
 * filter_backprop is [KH, KW, C, M]. Runs on num_threads threads (<= 0: one
 * per hardware thread). Bitwise identical for any num_threads. */
DWOP_EXPORT dwop_status dwop_filter_grad_cpu(
    const dwop_problem* problem, const void* input, const void* out_backprop,
    void* filter_backprop, int32_t num_threads, char* error, size_t error_size);

/* The fast CPU forward and input gradient, like dwop_filter_grad_cpu:
 * output has the shape of out_backprop, in_backprop that of input; filter is
 * [KH, KW, C, M]. Bitwise identical for any num_threads. */
DWOP_EXPORT dwop_status dwop_forward_cpu(const dwop_problem* problem,
                                         const void* input, const void* filter,
                                         void* output, int32_t num_threads,
                                         char* error, size_t error_size);
DWOP_EXPORT dwop_status dwop_input_grad_cpu(
    const dwop_problem* problem, const void* filter, const void* out_backprop,
    void* in_backprop, int32_t num_threads, char* error, size_t error_size);

/* The instruction-set level the CPU kernels use now: "avx512", "avx2"
 * or "generic" (a static string). The CPU's best level unless the
 * environment variable DWOP_CPU_ISA, read on every call, forces a lower one. */
DWOP_EXPORT const char* dwop_cpu_isa(void);

/* The naive reference kernel (cc/kernels/common/reference.h); single-threaded.
 */
DWOP_EXPORT dwop_status dwop_filter_grad_reference(
    const dwop_problem* problem, const void* input, const void* out_backprop,
    void* filter_backprop, char* error, size_t error_size);

/* The naive reference kernels of the forward and the input gradient
 * (cc/kernels/common/reference.h); single-threaded. output has the shape of
 * out_backprop_shape, in_backprop that of input_shape. */
DWOP_EXPORT dwop_status dwop_forward_reference(const dwop_problem* problem,
                                               const void* input,
                                               const void* filter, void* output,
                                               char* error, size_t error_size);
DWOP_EXPORT dwop_status dwop_input_grad_reference(
    const dwop_problem* problem, const void* filter, const void* out_backprop,
    void* in_backprop, char* error, size_t error_size);

/* ---- CUDA (cc/kernels/cuda/cuda.h). Always declared. In a library built
 * without CUDA, and on a machine without a CUDA driver or device, the entry
 * points that need a GPU return DWOP_UNAVAILABLE and say why. Problems are
 * validated exactly as for the CPU kernel. */

typedef enum dwop_cuda_path {
  DWOP_CUDA_AUTO = 0,     /* the op's choice */
  DWOP_CUDA_REGISTER = 1, /* register tap-group kernels (any problem) */
  DWOP_CUDA_TILED = 2,    /* shared-memory tiles (unit column stride and
                             dilation; DWOP_INVALID_ARGUMENT otherwise) */
} dwop_cuda_path;

/* What the planner chose (cc/kernels/cuda/plan.h, CudaPlan). kernel: 0 no
 * output elements, 1 zero fill, 2 register NHWC, 3 register NCHW, 4 tiled. */
typedef struct dwop_cuda_plan {
  int32_t kernel, tap_rows, tap_cols, vector, threads, lanes_x, lanes_y;
  int32_t col_segments, segment_cols, chunk_cols, chunks, bands, x_rows;
  int32_t x_pitch;
  int64_t channel_blocks, tap_groups_h, tap_groups_w, splits, work_total;
  int64_t work_per_split, blocks, smem_bytes, workspace_bytes;
  int64_t finalize_blocks;
} dwop_cuda_plan;

/* 1 when the library contains the CUDA kernels, else 0. */
DWOP_EXPORT int32_t dwop_cuda_built(void);

/* The number of CUDA devices the library can use: 0 when it was built
 * without CUDA or finds no driver or device, with the reason in `error`. */
DWOP_EXPORT int32_t dwop_cuda_device_count(char* error, size_t error_size);

/* Plans `problem` for `path` (a dwop_cuda_path) on a device with sm_count
 * multiprocessors and shared_memory_per_block bytes per block (pass
 * sm_count <= 0 for the current CUDA device's values, which needs a CUDA
 * build and a device). Buffers are taken as 256-byte aligned. Host only. */
DWOP_EXPORT dwop_status dwop_cuda_plan_problem(const dwop_problem* problem,
                                               int32_t path, int32_t sm_count,
                                               int64_t shared_memory_per_block,
                                               dwop_cuda_plan* plan,
                                               char* error, size_t error_size);

/* The filter gradient on the calling thread's current CUDA device. input,
 * out_backprop and filter_backprop are device pointers (dense, data_format
 * order; filter_backprop [KH, KW, C, M]). Asynchronous on cuda_stream (a
 * cudaStream_t; NULL is the legacy default stream): synchronise before
 * reading the result. The workspace, when the plan needs one, is allocated
 * and freed on that stream (cudaMallocAsync / cudaFreeAsync). Bitwise
 * identical from run to run on a given GPU model. */
DWOP_EXPORT dwop_status dwop_filter_grad_cuda(
    const dwop_problem* problem, const void* input, const void* out_backprop,
    void* filter_backprop, void* cuda_stream, char* error, size_t error_size);

/* dwop_filter_grad_cuda with a chosen path and, optionally, the caller's
 * workspace: device memory of at least the plan's workspace_bytes (from
 * dwop_cuda_plan_problem with the same path and sm_count 0), 16-byte
 * aligned; workspace NULL: allocated on the stream as above. */
DWOP_EXPORT dwop_status dwop_filter_grad_cuda_ex(
    const dwop_problem* problem, const void* input, const void* out_backprop,
    void* filter_backprop, int32_t path, void* workspace,
    int64_t workspace_bytes, void* cuda_stream, char* error, size_t error_size);

/* The CUDA kernels' code run on the host (cc/kernels/cuda/cuda.h, EmulateCuda)
 * on host buffers, planned as dwop_cuda_plan_problem plans (with the buffers'
 * real alignment): the same arithmetic in the same order, so the same bits as
 * the GPU. Every build has it; slow, for small problems (tests). */
DWOP_EXPORT dwop_status dwop_filter_grad_cuda_emulated(
    const dwop_problem* problem, const void* input, const void* out_backprop,
    void* filter_backprop, int32_t path, int32_t sm_count,
    int64_t shared_memory_per_block, char* error, size_t error_size);

/* ---- CUDA forward and input gradient (cc/kernels/cuda/conv_plan.h,
 * conv_kernels.h). Gathers: each result element is summed by one thread in a
 * fixed order, so they need no workspace and are bitwise identical from run
 * to run on any GPU. The problem is given as for the reference entry points:
 * for the forward, input_shape, filter_sizes (the filter's shape) and
 * optionally out_backprop_shape (the output's, checked when given); for the
 * input gradient, input_shape holds the input_sizes values. */

/* What the conv planner chose (CudaConvPlan). kernel: 0 no result elements,
 * 1 zero fill, 2 forward NHWC, 3 forward NCHW, 4 input gradient NHWC,
 * 5 input gradient NCHW. */
typedef struct dwop_cuda_conv_plan {
  int32_t kernel, threads, cols_per_thread;
  int64_t items, col_runs, blocks, output_elements, output_bytes;
} dwop_cuda_conv_plan;

typedef enum dwop_conv_op {
  DWOP_CONV_FORWARD = 0,
  DWOP_CONV_INPUT_GRAD = 1,
} dwop_conv_op;

/* Plans `problem` for `op` (a dwop_conv_op) on a device with sm_count
 * multiprocessors (<= 0: the current CUDA device). Host only. */
DWOP_EXPORT dwop_status dwop_cuda_conv_plan_problem(
    const dwop_problem* problem, int32_t op, int32_t sm_count,
    dwop_cuda_conv_plan* plan, char* error, size_t error_size);

/* The forward / input gradient on the calling thread's current CUDA device;
 * device pointers, dense in data_format order; asynchronous on cuda_stream
 * (a cudaStream_t; NULL is the legacy default stream). */
DWOP_EXPORT dwop_status dwop_forward_cuda(const dwop_problem* problem,
                                          const void* input, const void* filter,
                                          void* output, void* cuda_stream,
                                          char* error, size_t error_size);
DWOP_EXPORT dwop_status dwop_input_grad_cuda(
    const dwop_problem* problem, const void* filter, const void* out_backprop,
    void* in_backprop, void* cuda_stream, char* error, size_t error_size);

/* Their kernels' code run on the host on host buffers (EmulateCuda), planned
 * for a device with sm_count multiprocessors: the same bits as the GPU. */
DWOP_EXPORT dwop_status dwop_forward_cuda_emulated(
    const dwop_problem* problem, const void* input, const void* filter,
    void* output, int32_t sm_count, char* error, size_t error_size);
DWOP_EXPORT dwop_status dwop_input_grad_cuda_emulated(
    const dwop_problem* problem, const void* filter, const void* out_backprop,
    void* in_backprop, int32_t sm_count, char* error, size_t error_size);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DWOP_CC_C_API_DWOP_C_H_ */
