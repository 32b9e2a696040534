// The CUDA forward and input gradient's bodies, written once for nvcc (the
// *.cu.cc launchers, Block = one CUDA thread per item) and the host emulator
// (emulator.cc, every item in turn), with the portability layer of
// portability.h.
//
// Both are gathers: a thread owns output elements and sums their terms in a
// fixed order (taps row by row, then column, then depth multiplier), with
// fused multiply-adds in the accumulator type (float for half, bfloat16 and
// float; double for double) and one rounding at the end. No atomics, no
// shared memory, no workspace: bitwise reproducible on any GPU.
//
// Layouts (params.h): input/in_backprop [N,H,W,C] or [N,C,H,W], output /
// out_backprop [N,OH,OW,OC] or [N,OC,OH,OW] with OC = C*M, filter
// [KH,KW,C,M] = [tap][oc].
//
//   ForwardItem (NHWC): item = ((n * OH + oh) * col_runs + run) * OC + oc;
//     lanes run over output channels (coalesced loads of input and filter,
//     coalesced stores), each thread over a run of cols_per_thread output
//     columns (each filter value loaded once for the run; at unit column
//     stride and dilation the run's input values slide through a register
//     window, one new load per tap). Tap rows and
//     columns are clamped to those that land inside the input, so padding
//     costs nothing.
//   ForwardItem (NCHW): item = the output element's offset; lanes run over
//     output columns.
//   InputGradItem (NHWC): item = ((n * H + ih) * col_runs + run) * C + c;
//     lanes over input channels, each thread a run of cols_per_thread input
//     columns when stride_cols is 1 (each filter value loaded once for the
//     run; with M = 1 and unit column dilation the run's out_backprop values
//     slide through a register window), else one column. (NCHW): item = the
//     in_backprop element's offset, lanes over columns. Only the taps whose
//     output position exists are visited: kh with (ih + pad_top - kh *
//     dilation) divisible by the stride, found once (at most step_rows tests)
//     and then stepped by step_rows = stride / gcd(stride, dilation); likewise
//     single columns (a run of columns, stride 1, checks each column's output
//     column). Every element sums in the same order (kh, kw, m ascending)
//     whichever way it is reached.
#ifndef DWOP_CC_KERNELS_CUDA_CONV_KERNELS_H_
#define DWOP_CC_KERNELS_CUDA_CONV_KERNELS_H_

#include <cstdint>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"
#include "cc/kernels/cuda/conv_plan.h"
#include "cc/kernels/cuda/portability.h"

namespace dwop {
namespace gpu {

// Everything the conv kernels read, by value (a kernel parameter). The
// planner has checked the 32-bit fields' ranges (conv_plan.cc).
struct ConvArgs {
  int32_t batch, in_rows, in_cols, in_depth, multiplier, out_depth;
  int32_t filter_rows, filter_cols, out_rows, out_cols;
  int32_t stride_rows, stride_cols, dilation_rows, dilation_cols;
  int32_t pad_top, pad_left;
  int32_t step_rows, step_cols;  // stride / gcd(stride, dilation)
  int32_t cols_per_thread;
  int64_t col_runs, items;
  const void* input;  // forward: input; input gradient: out_backprop
  const void* filter;
  void* output;  // forward: output; input gradient: in_backprop
};

inline int64_t Gcd(int64_t a, int64_t b) {
  while (b != 0) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

inline ConvArgs MakeConvArgs(const Geometry& g, const CudaConvPlan& plan,
                             const void* input, const void* filter,
                             void* output) {
  ConvArgs a;
  a.batch = static_cast<int32_t>(g.batch);
  a.in_rows = static_cast<int32_t>(g.in_rows);
  a.in_cols = static_cast<int32_t>(g.in_cols);
  a.in_depth = static_cast<int32_t>(g.in_depth);
  a.multiplier = static_cast<int32_t>(g.depth_multiplier);
  a.out_depth = static_cast<int32_t>(g.out_depth());
  a.filter_rows = static_cast<int32_t>(g.filter_rows);
  a.filter_cols = static_cast<int32_t>(g.filter_cols);
  a.out_rows = static_cast<int32_t>(g.out_rows);
  a.out_cols = static_cast<int32_t>(g.out_cols);
  a.stride_rows = static_cast<int32_t>(g.stride_rows);
  a.stride_cols = static_cast<int32_t>(g.stride_cols);
  a.dilation_rows = static_cast<int32_t>(g.dilation_rows);
  a.dilation_cols = static_cast<int32_t>(g.dilation_cols);
  a.pad_top = static_cast<int32_t>(g.pad_top);
  a.pad_left = static_cast<int32_t>(g.pad_left);
  a.step_rows =
      static_cast<int32_t>(g.stride_rows / Gcd(g.stride_rows, g.dilation_rows));
  a.step_cols =
      static_cast<int32_t>(g.stride_cols / Gcd(g.stride_cols, g.dilation_cols));
  a.cols_per_thread = plan.cols_per_thread;
  a.col_runs = plan.col_runs;
  a.items = plan.items;
  a.input = input;
  a.filter = filter;
  a.output = output;
  return a;
}

inline ConvArgs MakeConvArgs(const ForwardParams& p, const CudaConvPlan& plan) {
  return MakeConvArgs(p.geo, plan, p.input, p.filter, p.output);
}

inline ConvArgs MakeConvArgs(const InputGradParams& p,
                             const CudaConvPlan& plan) {
  return MakeConvArgs(p.geo, plan, p.out_backprop, p.filter, p.in_backprop);
}

// ceil(a / b) for a >= 0, b > 0, without forming a + b - 1.
DWOP_DEVICE int CeilDivNonNeg(int a, int b) { return a / b + (a % b != 0); }

// Returns *x % d and sets *x = *x / d (x >= 0, d >= 1): in 32 bits while x
// fits, the usual case, where 64-bit division costs several times more.
DWOP_DEVICE int DivMod(int64_t* x, int d) {
  if (*x <= 0x7fffffff) {
    const uint32_t v = static_cast<uint32_t>(*x);
    const uint32_t q = v / static_cast<uint32_t>(d);
    *x = q;
    return static_cast<int>(v - q * static_cast<uint32_t>(d));
  }
  const int64_t q = *x / d;
  const int r = static_cast<int>(*x - q * d);
  *x = q;
  return r;
}

// The taps k in [0, taps) with 0 <= base + k * dilation < extent, as
// [*begin, *end) (empty when *begin >= *end). base may be negative.
DWOP_DEVICE void ClampTaps(int base, int dilation, int extent, int taps,
                           int* begin, int* end) {
  *begin = base >= 0 ? 0 : CeilDivNonNeg(-base, dilation);
  *end = base >= extent ? 0 : Min(taps, (extent - 1 - base) / dilation + 1);
}

// ---------------------------------------------------------------------------
// Forward.

template <typename T, bool kNchw>
DWOP_DEVICE void ForwardItem(const ConvArgs& a, int64_t item) {
  using A = Acc<T>;
  constexpr int kCols = kNchw ? 1 : kForwardMaxCols;
  const T* x = static_cast<const T*>(a.input);
  const T* w = static_cast<const T*>(a.filter);
  T* y = static_cast<T*>(a.output);
  int n, oh, oc, ow0, cols;
  if (kNchw) {
    int64_t rest = item;
    ow0 = DivMod(&rest, a.out_cols);
    oh = DivMod(&rest, a.out_rows);
    oc = DivMod(&rest, a.out_depth);
    n = static_cast<int>(rest);
    cols = 1;
  } else {
    int64_t rest = item;
    oc = DivMod(&rest, a.out_depth);
    const int run = DivMod(&rest, static_cast<int>(a.col_runs));
    oh = DivMod(&rest, a.out_rows);
    n = static_cast<int>(rest);
    ow0 = run * a.cols_per_thread;
    cols = Min(a.cols_per_thread, a.out_cols - ow0);
  }
  const int c = oc / a.multiplier;
  // Input element (ih, iw) of this thread's image and channel: x_plane +
  // ih * x_row_pitch + iw * x_col_pitch.
  const int64_t x_col_pitch = kNchw ? 1 : a.in_depth;
  const int64_t x_row_pitch = x_col_pitch * a.in_cols;
  const T* x_plane =
      kNchw ? x + (static_cast<int64_t>(n) * a.in_depth + c) * a.in_rows *
                      a.in_cols
            : x + static_cast<int64_t>(n) * a.in_rows * x_row_pitch + c;
  A acc[kCols];
  DWOP_UNROLL
  for (int j = 0; j < kCols; ++j) acc[j] = A(0);

  const int ih0 = oh * a.stride_rows - a.pad_top;
  int kh_begin, kh_end;
  ClampTaps(ih0, a.dilation_rows, a.in_rows, a.filter_rows, &kh_begin, &kh_end);
  // Columns: tap kw is needed when some column of the run reads inside the
  // input (the first column bounds it above, the last below).
  const int iw0 = ow0 * a.stride_cols - a.pad_left;
  const int iw_last = iw0 + (cols - 1) * a.stride_cols;
  int kw_begin, kw_unused, kw_unused2, kw_end;
  ClampTaps(iw_last, a.dilation_cols, a.in_cols, a.filter_cols, &kw_begin,
            &kw_unused);
  ClampTaps(iw0, a.dilation_cols, a.in_cols, a.filter_cols, &kw_unused2,
            &kw_end);
  // Unit column stride and dilation (NHWC): tap kw of column j reads input
  // column iw0 + kw + j, so a window of kCols input values slides along the
  // row, one new load per tap instead of kCols. Same terms, same order.
  const bool slide = !kNchw && a.stride_cols == 1 && a.dilation_cols == 1;
  for (int kh = kh_begin; kh < kh_end; ++kh) {
    const int ih = ih0 + kh * a.dilation_rows;
    const T* x_row = x_plane + ih * x_row_pitch;
    const T* w_row =
        w + static_cast<int64_t>(kh) * a.filter_cols * a.out_depth + oc;
    if (slide) {
      auto load = [&](int iw) -> A {
        return iw >= 0 && iw < a.in_cols ? ToAcc(x_row[iw * x_col_pitch])
                                         : A(0);
      };
      A win[kCols];  // win[j]: input column iw0 + kw + j
      DWOP_UNROLL
      for (int j = 0; j + 1 < kCols; ++j) win[j + 1] = load(iw0 + kw_begin + j);
      for (int kw = kw_begin; kw < kw_end; ++kw) {
        DWOP_UNROLL
        for (int j = 0; j + 1 < kCols; ++j) win[j] = win[j + 1];
        win[kCols - 1] = load(iw0 + kw + kCols - 1);
        const A wv = ToAcc(w_row[static_cast<int64_t>(kw) * a.out_depth]);
        DWOP_UNROLL
        for (int j = 0; j < kCols; ++j) {
          const int iw = iw0 + kw + j;
          if (j < cols && iw >= 0 && iw < a.in_cols) {
            acc[j] = Fma(win[j], wv, acc[j]);
          }
        }
      }
      continue;
    }
    for (int kw = kw_begin; kw < kw_end; ++kw) {
      const A wv = ToAcc(w_row[static_cast<int64_t>(kw) * a.out_depth]);
      const int iw_tap = iw0 + kw * a.dilation_cols;
      DWOP_UNROLL
      for (int j = 0; j < kCols; ++j) {
        const int iw = iw_tap + j * a.stride_cols;
        if (j < cols && iw >= 0 && iw < a.in_cols) {
          acc[j] = Fma(ToAcc(x_row[iw * x_col_pitch]), wv, acc[j]);
        }
      }
    }
  }
  if (kNchw) {
    y[item] = FromAcc<T>(acc[0]);
  } else {
    T* y_run =
        y +
        ((static_cast<int64_t>(n) * a.out_rows + oh) * a.out_cols + ow0) *
            a.out_depth +
        oc;
    DWOP_UNROLL
    for (int j = 0; j < kCols; ++j) {
      if (j < cols)
        y_run[static_cast<int64_t>(j) * a.out_depth] = FromAcc<T>(acc[j]);
    }
  }
}

// ---------------------------------------------------------------------------
// Input gradient.

// The taps k in [0, taps) for which position p (an input row or column,
// already offset by its pad: ih + pad_top) reads an output position: o =
// (p - k * dilation) / stride exact and in [0, outputs). On return *first is
// the smallest such k (or > *last when there is none) and *last the largest
// candidate; the others are first + i * step, step = stride / gcd.
DWOP_DEVICE void GatherTaps(int p, int dilation, int stride, int step,
                            int outputs, int taps, int* first, int* last) {
  // 0 <= p - k * dilation <= (outputs - 1) * stride.
  *last = Min(taps - 1, p / dilation);
  const int over = p - (outputs - 1) * stride;
  int k = over <= 0 ? 0 : CeilDivNonNeg(over, dilation);
  const int probe_end = Min(*last, k + step - 1);
  for (; k <= probe_end; ++k) {
    if ((p - k * dilation) % stride == 0) break;
  }
  *first = k <= probe_end ? k : *last + 1;
}

template <typename T, bool kNchw>
DWOP_DEVICE void InputGradItem(const ConvArgs& a, int64_t item) {
  using A = Acc<T>;
  constexpr int kCols = kNchw ? 1 : kForwardMaxCols;
  const T* dy = static_cast<const T*>(a.input);
  const T* w = static_cast<const T*>(a.filter);
  T* dx = static_cast<T*>(a.output);
  int n, ih, iw0, c, cols;
  if (kNchw) {
    int64_t rest = item;
    iw0 = DivMod(&rest, a.in_cols);
    ih = DivMod(&rest, a.in_rows);
    c = DivMod(&rest, a.in_depth);
    n = static_cast<int>(rest);
    cols = 1;
  } else {
    int64_t rest = item;
    c = DivMod(&rest, a.in_depth);
    const int run = DivMod(&rest, static_cast<int>(a.col_runs));
    ih = DivMod(&rest, a.in_rows);
    n = static_cast<int>(rest);
    iw0 = run * a.cols_per_thread;
    cols = Min(a.cols_per_thread, a.in_cols - iw0);
  }
  const int r = ih + a.pad_top;
  const int q0 = iw0 + a.pad_left;
  int kh_first, kh_last, kw_first, kw_last;
  GatherTaps(r, a.dilation_rows, a.stride_rows, a.step_rows, a.out_rows,
             a.filter_rows, &kh_first, &kh_last);
  if (cols == 1) {
    GatherTaps(q0, a.dilation_cols, a.stride_cols, a.step_cols, a.out_cols,
               a.filter_cols, &kw_first, &kw_last);
  } else {
    // A run of columns (stride_cols == 1, planned): every tap some column
    // of the run reads; each column checks its own output column below.
    kw_last = Min(a.filter_cols - 1, (q0 + cols - 1) / a.dilation_cols);
    const int over = q0 - (a.out_cols - 1);
    kw_first = over <= 0 ? 0 : CeilDivNonNeg(over, a.dilation_cols);
  }
  const int kw_step = cols == 1 ? a.step_cols : 1;
  // out_backprop element (oh, ow, oc) of image n: dy_image + oh * row_pitch
  // + ow * col_pitch + oc * depth_pitch.
  const int64_t col_pitch = kNchw ? 1 : a.out_depth;
  const int64_t row_pitch = col_pitch * a.out_cols;
  const int64_t depth_pitch =
      kNchw ? static_cast<int64_t>(a.out_rows) * a.out_cols : 1;
  const int oc0 = c * a.multiplier;
  const T* dy_image =
      dy + static_cast<int64_t>(n) * a.out_rows * a.out_cols * a.out_depth +
      oc0 * depth_pitch;
  A acc[kCols];
  DWOP_UNROLL
  for (int j = 0; j < kCols; ++j) acc[j] = A(0);
  // A run with depth multiplier 1 and unit column dilation: tap kw of
  // column j reads output column q0 - kw + j, so a window of kCols
  // out_backprop values slides (right) along the row, one new load per tap.
  const bool slide = cols > 1 && a.multiplier == 1 && a.dilation_cols == 1;
  for (int kh = kh_first; kh <= kh_last; kh += a.step_rows) {
    const int oh = (r - kh * a.dilation_rows) / a.stride_rows;
    const T* dy_row = dy_image + oh * row_pitch;
    const T* w_row =
        w + static_cast<int64_t>(kh) * a.filter_cols * a.out_depth + oc0;
    if (slide) {
      auto load = [&](int ow) -> A {
        return ow >= 0 && ow < a.out_cols ? ToAcc(dy_row[ow * col_pitch])
                                          : A(0);
      };
      A win[kCols];  // win[j]: output column q0 - kw + j
      DWOP_UNROLL
      for (int j = 0; j + 1 < kCols; ++j) win[j] = load(q0 - kw_first + j + 1);
      for (int kw = kw_first; kw <= kw_last; ++kw) {
        DWOP_UNROLL
        for (int j = kCols - 1; j > 0; --j) win[j] = win[j - 1];
        win[0] = load(q0 - kw);
        const A wv = ToAcc(w_row[static_cast<int64_t>(kw) * a.out_depth]);
        DWOP_UNROLL
        for (int j = 0; j < kCols; ++j) {
          const int ow = q0 - kw + j;
          if (j < cols && ow >= 0 && ow < a.out_cols) {
            acc[j] = Fma(wv, win[j], acc[j]);
          }
        }
      }
      continue;
    }
    for (int kw = kw_first; kw <= kw_last; kw += kw_step) {
      const T* wt = w_row + static_cast<int64_t>(kw) * a.out_depth;
      if (cols == 1) {
        const int ow = (q0 - kw * a.dilation_cols) / a.stride_cols;
        const T* d = dy_row + ow * col_pitch;
        for (int m = 0; m < a.multiplier; ++m) {
          acc[0] = Fma(ToAcc(wt[m]), ToAcc(d[m * depth_pitch]), acc[0]);
        }
      } else {
        const int ow0 = q0 - kw * a.dilation_cols;  // column j: ow0 + j
        for (int m = 0; m < a.multiplier; ++m) {
          const A wv = ToAcc(wt[m]);
          DWOP_UNROLL
          for (int j = 0; j < kCols; ++j) {
            const int ow = ow0 + j;
            if (j < cols && ow >= 0 && ow < a.out_cols) {
              acc[j] = Fma(wv, ToAcc(dy_row[ow * col_pitch + m]), acc[j]);
            }
          }
        }
      }
    }
  }
  if (kNchw) {
    dx[item] = FromAcc<T>(acc[0]);
  } else {
    T* dx_run = dx +
                ((static_cast<int64_t>(n) * a.in_rows + ih) * a.in_cols + iw0) *
                    a.in_depth +
                c;
    DWOP_UNROLL
    for (int j = 0; j < kCols; ++j) {
      if (j < cols)
        dx_run[static_cast<int64_t>(j) * a.in_depth] = FromAcc<T>(acc[j]);
    }
  }
}

// ---------------------------------------------------------------------------
// Dispatch from a plan to the compiled instantiations, shared by the
// launchers and the emulator. The visitor provides
//   template <typename T, bool kNchw> Status Forward();
//   template <typename T, bool kNchw> Status InputGrad();

template <typename T, class Visitor>
Status VisitConvType(const CudaConvPlan& plan, Visitor& vis) {
  switch (plan.kernel) {
    case CudaConvKernel::kForwardNhwc:
      return vis.template Forward<T, false>();
    case CudaConvKernel::kForwardNchw:
      return vis.template Forward<T, true>();
    case CudaConvKernel::kInputGradNhwc:
      return vis.template InputGrad<T, false>();
    case CudaConvKernel::kInputGradNchw:
      return vis.template InputGrad<T, true>();
    default:
      return Status::Internal(
          "VisitConvType called for a plan without "
          "kernels");
  }
}

}  // namespace gpu
}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CUDA_CONV_KERNELS_H_
