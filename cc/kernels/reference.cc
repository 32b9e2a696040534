#include "cc/kernels/reference.h"

#include <cstdint>

#include "cc/kernels/float16.h"

namespace dwop {
namespace {

// Element offsets of [n, h, w, c] in a 4-D tensor of spatial size rows x cols
// and `depth` channels.
int64_t Offset(Layout layout, int64_t n, int64_t h, int64_t w, int64_t c,
               int64_t rows, int64_t cols, int64_t depth) {
  if (layout == Layout::kNHWC) return ((n * rows + h) * cols + w) * depth + c;
  return ((n * depth + c) * rows + h) * cols + w;
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
                const Acc x = Load(input + Offset(g.layout, n, ih, iw, c,
                                                  g.in_rows, g.in_cols,
                                                  g.in_depth));
                const Acc d = Load(dy + Offset(g.layout, n, oh, ow,
                                               c * g.depth_multiplier + m,
                                               g.out_rows, g.out_cols,
                                               out_depth));
                sum += x * d;
              }
            }
          }
          Store(dw + ((kh * g.filter_cols + kw) * g.in_depth + c) *
                         g.depth_multiplier +
                     m,
                sum);
        }
      }
    }
  }
}

}  // namespace

Status RunReference(const FilterGradParams& params) {
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

}  // namespace dwop
