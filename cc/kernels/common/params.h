// The one contract between the glue (TensorFlow, the C ABI) and the kernels.
//
// Everything here is plain data: no framework types, no allocation. The glue
// validates the op's arguments once (geometry.h), fills a FilterGradParams and
// hands it to a kernel (reference.h, cpu.h, cuda.h). Kernels may assume every
// invariant documented below holds.
#ifndef DWOP_CC_KERNELS_COMMON_PARAMS_H_
#define DWOP_CC_KERNELS_COMMON_PARAMS_H_

#include <cstdint>

namespace dwop {

enum class DType : int32_t {
  kHalf = 0,
  kBfloat16 = 1,
  kFloat = 2,
  kDouble = 3
};
enum class Layout : int32_t { kNHWC = 0, kNCHW = 1 };

// Bytes per element of a DType.
inline int64_t DTypeSize(DType dtype) {
  return dtype == DType::kDouble ? 8 : dtype == DType::kFloat ? 4 : 2;
}

// Bytes per accumulator: half and bfloat16 sum in float32 (the runtime twin
// of AccumulatorOf in float16.h).
inline int64_t AccumulatorSize(DType dtype) {
  return dtype == DType::kDouble ? 8 : 4;
}

// ceil(a / b) for b > 0 and any a, without forming a + b - 1 (which
// overflows for a stride near INT64_MAX): division truncates toward zero,
// which already is the ceiling for a <= 0.
inline int64_t CeilDiv(int64_t a, int64_t b) { return a / b + (a % b > 0); }

// The resolved shape of one depthwise convolution problem, shared by its three
// ops (forward, input gradient, filter gradient; OpKind below).
//
//   input         [N, H, W, C]          (NHWC) or [N, C, H, W]          (NCHW)
//   out_backprop  [N, OH, OW, C*M]      (NHWC) or [N, C*M, OH, OW]      (NCHW)
//   filter_grad   [KH, KW, C, M]        (both layouts)
//
//   filter_grad[kh, kw, c, m] = sum over n, oh, ow of
//       input[n, oh*stride_rows + kh*dilation_rows - pad_top,
//                ow*stride_cols + kw*dilation_cols - pad_left, c]
//     * out_backprop[n, oh, ow, c*M + m]
//
// where input positions outside [0, H) x [0, W) count as zero. Bottom and right
// padding are implicit in out_rows/out_cols.
//
// REQUIRES (guaranteed by ComputeGeometry): every size >= 0; strides and
// dilations >= 1; pads >= 0; every element count and every byte size of the
// three tensors fits in int64; filter_grad has at most 2^31-1 elements
// (kMaxFilterElements) and 2 GiB (kMaxFilterBytes). An EMPTY tensor's other
// dimensions may be huge ([0, 2^62, 2^62, 3] is valid): the counts below
// return 0 without multiplying them, and no kernel runs when any of the three
// tensors is empty (NothingToSum in geometry.h: the host paths write the
// zeros with WriteZerosIfNothingToSum, the CUDA planner plans a memset), so a
// kernel sees only non-empty tensors, whose dimensions multiply in any order
// without overflow.
// Products ACROSS tensors (out_rows * filter_rows, the flop count) are not
// bounded: a kernel that forms one must use checked or floating-point
// arithmetic.
struct Geometry {
  int64_t batch = 0;
  int64_t in_rows = 0;
  int64_t in_cols = 0;
  int64_t in_depth = 0;
  int64_t depth_multiplier = 0;
  int64_t filter_rows = 0;
  int64_t filter_cols = 0;
  int64_t out_rows = 0;
  int64_t out_cols = 0;
  int64_t stride_rows = 1;
  int64_t stride_cols = 1;
  int64_t dilation_rows = 1;
  int64_t dilation_cols = 1;
  int64_t pad_top = 0;
  int64_t pad_left = 0;
  Layout layout = Layout::kNHWC;

  int64_t out_depth() const { return in_depth * depth_multiplier; }
  int64_t input_elements() const {
    return Count(batch, in_rows, in_cols, in_depth);
  }
  int64_t out_backprop_elements() const {
    return Count(batch, out_rows, out_cols, out_depth());
  }
  int64_t filter_elements() const {
    return Count(filter_rows, filter_cols, in_depth, depth_multiplier);
  }

  // a*b*c*d, or 0 without multiplying when one of them is 0: the others of
  // an empty tensor may overflow int64 together.
  static int64_t Count(int64_t a, int64_t b, int64_t c, int64_t d) {
    if (a == 0 || b == 0 || c == 0 || d == 0) return 0;
    return a * b * c * d;
  }
};

// The three ops of a depthwise layer, named in messages.
enum class OpKind : int32_t { kForward = 0, kInputGrad = 1, kFilterGrad = 2 };

// One call of each op: the geometry, the element type shared by all three
// tensors, and dense row-major buffers in the layouts described above
// (`output` and `in_backprop` have the shapes of out_backprop and input). For
// the CUDA kernels the pointers are device pointers.
//
//   forward:     output[n, oh, ow, c*M + m] = sum over kh, kw of
//                    input[n, ih, iw, c] * filter[kh, kw, c, m]
//   input grad:  in_backprop[n, ih, iw, c] = sum over every (oh, ow, kh, kw, m)
//                    with ih, iw as above of
//                    filter[kh, kw, c, m] * out_backprop[n, oh, ow, c*M + m]
//
// with ih = oh*stride_rows + kh*dilation_rows - pad_top and iw likewise.
struct ForwardParams {
  Geometry geo;
  DType dtype = DType::kFloat;
  const void* input = nullptr;
  const void* filter = nullptr;
  void* output = nullptr;
};

struct InputGradParams {
  Geometry geo;
  DType dtype = DType::kFloat;
  const void* filter = nullptr;
  const void* out_backprop = nullptr;
  void* in_backprop = nullptr;
};

struct FilterGradParams {
  Geometry geo;
  DType dtype = DType::kFloat;
  const void* input = nullptr;
  const void* out_backprop = nullptr;
  void* filter_backprop = nullptr;
};

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_COMMON_PARAMS_H_
