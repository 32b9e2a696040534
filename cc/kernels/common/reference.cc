#include "cc/kernels/common/reference.h"

#include <cstdint>

#include "cc/kernels/common/float16.h"

namespace dwop {
namespace {

// Element offsets of [n, h, w, c] in a 4-D tensor of spatial size rows x cols
// and `depth` channels.
int64_t Offset(Layout layout, int64_t n, int64_t h, int64_t w, int64_t c,
               int64_t rows, int64_t cols, int64_t depth) {
  if (layout == Layout::kNHWC) return ((n * rows + h) * cols + w) * depth + c;
  return ((n * depth + c) * rows + h) * cols + w;
}

// Element offset of filter[kh, kw, c, m].
int64_t FilterOffset(const Geometry& g, int64_t kh, int64_t kw, int64_t c,
                     int64_t m) {
  return ((kh * g.filter_cols + kw) * g.in_depth + c) * g.depth_multiplier + m;
}

template <typename T>
void Compute(const FilterGradParams& p) {
  using Acc = typename AccumulatorOf<T>::type;
  const Geometry& g = p.geo;
  const T* input = static_cast<const T*>(p.input);
  const T* dy = static_cast<const T*>(p.out_backprop);
  T* dw = static_cast<T*>(p.filter_backprop);
  const int64_t out_depth = g.out_depth();
  for (int64_t kh = 0; kh < g.filter_rows; ++kh) {
    for (int64_t kw = 0; kw < g.filter_cols; ++kw) {
      for (int64_t c = 0; c < g.in_depth; ++c) {
        for (int64_t m = 0; m < g.depth_multiplier; ++m) {
          Acc sum = 0;
          for (int64_t n = 0; n < g.batch; ++n) {
            for (int64_t oh = 0; oh < g.out_rows; ++oh) {
              const int64_t ih =
                  oh * g.stride_rows + kh * g.dilation_rows - g.pad_top;
              if (ih < 0 || ih >= g.in_rows) continue;
              for (int64_t ow = 0; ow < g.out_cols; ++ow) {
                const int64_t iw =
                    ow * g.stride_cols + kw * g.dilation_cols - g.pad_left;
                if (iw < 0 || iw >= g.in_cols) continue;
                const Acc x =
                    Load(input + Offset(g.layout, n, ih, iw, c, g.in_rows,
                                        g.in_cols, g.in_depth));
                const Acc d = Load(
                    dy + Offset(g.layout, n, oh, ow, c * g.depth_multiplier + m,
                                g.out_rows, g.out_cols, out_depth));
                sum += x * d;
              }
            }
          }
          Store(dw +
                    ((kh * g.filter_cols + kw) * g.in_depth + c) *
                        g.depth_multiplier +
                    m,
                sum);
        }
      }
    }
  }
}

template <typename T>
void Compute(const ForwardParams& p) {
  using Acc = typename AccumulatorOf<T>::type;
  const Geometry& g = p.geo;
  const T* input = static_cast<const T*>(p.input);
  const T* w = static_cast<const T*>(p.filter);
  T* y = static_cast<T*>(p.output);
  const int64_t out_depth = g.out_depth();
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oh = 0; oh < g.out_rows; ++oh) {
      for (int64_t ow = 0; ow < g.out_cols; ++ow) {
        for (int64_t c = 0; c < g.in_depth; ++c) {
          for (int64_t m = 0; m < g.depth_multiplier; ++m) {
            Acc sum = 0;
            for (int64_t kh = 0; kh < g.filter_rows; ++kh) {
              const int64_t ih =
                  oh * g.stride_rows + kh * g.dilation_rows - g.pad_top;
              if (ih < 0 || ih >= g.in_rows) continue;
              for (int64_t kw = 0; kw < g.filter_cols; ++kw) {
                const int64_t iw =
                    ow * g.stride_cols + kw * g.dilation_cols - g.pad_left;
                if (iw < 0 || iw >= g.in_cols) continue;
                sum +=
                    Acc(Load(input + Offset(g.layout, n, ih, iw, c, g.in_rows,
                                            g.in_cols, g.in_depth))) *
                    Acc(Load(w + FilterOffset(g, kh, kw, c, m)));
              }
            }
            Store(y + Offset(g.layout, n, oh, ow, c * g.depth_multiplier + m,
                             g.out_rows, g.out_cols, out_depth),
                  sum);
          }
        }
      }
    }
  }
}

// Gathers, for each input position, the taps and output positions that read
// it: oh = (ih + pad_top - kh*dilation_rows) / stride_rows when that divides
// exactly and lands in [0, out_rows); likewise for columns.
template <typename T>
void Compute(const InputGradParams& p) {
  using Acc = typename AccumulatorOf<T>::type;
  const Geometry& g = p.geo;
  const T* w = static_cast<const T*>(p.filter);
  const T* dy = static_cast<const T*>(p.out_backprop);
  T* dx = static_cast<T*>(p.in_backprop);
  const int64_t out_depth = g.out_depth();
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t ih = 0; ih < g.in_rows; ++ih) {
      for (int64_t iw = 0; iw < g.in_cols; ++iw) {
        for (int64_t c = 0; c < g.in_depth; ++c) {
          Acc sum = 0;
          for (int64_t kh = 0; kh < g.filter_rows; ++kh) {
            const int64_t row = ih + g.pad_top - kh * g.dilation_rows;
            if (row < 0 || row % g.stride_rows != 0) continue;
            const int64_t oh = row / g.stride_rows;
            if (oh >= g.out_rows) continue;
            for (int64_t kw = 0; kw < g.filter_cols; ++kw) {
              const int64_t col = iw + g.pad_left - kw * g.dilation_cols;
              if (col < 0 || col % g.stride_cols != 0) continue;
              const int64_t ow = col / g.stride_cols;
              if (ow >= g.out_cols) continue;
              for (int64_t m = 0; m < g.depth_multiplier; ++m) {
                sum +=
                    Acc(Load(w + FilterOffset(g, kh, kw, c, m))) *
                    Acc(Load(dy + Offset(g.layout, n, oh, ow,
                                         c * g.depth_multiplier + m, g.out_rows,
                                         g.out_cols, out_depth)));
              }
            }
          }
          Store(dx + Offset(g.layout, n, ih, iw, c, g.in_rows, g.in_cols,
                            g.in_depth),
                sum);
        }
      }
    }
  }
}

template <typename Params>
Status Dispatch(const Params& params) {
  switch (params.dtype) {
    case DType::kHalf:
      Compute<half_t>(params);
      break;
    case DType::kBfloat16:
      Compute<bfloat16_t>(params);
      break;
    case DType::kFloat:
      Compute<float>(params);
      break;
    case DType::kDouble:
      Compute<double>(params);
      break;
    default:
      return Status::InvalidArgument("unknown dtype");
  }
  return Status::Ok();
}

}  // namespace

Status RunReference(const FilterGradParams& params) { return Dispatch(params); }

Status RunReference(const ForwardParams& params) { return Dispatch(params); }

Status RunReference(const InputGradParams& params) { return Dispatch(params); }

}  // namespace dwop
