// Bootstrap CPU kernel: one filter tap per work unit. Replaced by the
// register-blocked kernel.
#include "cc/kernels/cpu.h"

#include <cstring>

#include "cc/kernels/float16.h"

namespace dwop {
namespace {

template <typename T>
void Tap(const FilterGradParams& p, int64_t tap) {
  using Acc = typename AccumulatorOf<T>::type;
  const Geometry& g = p.geo;
  const int64_t kh = tap / g.filter_cols, kw = tap % g.filter_cols;
  const T* x = static_cast<const T*>(p.input);
  const T* dy = static_cast<const T*>(p.out_backprop);
  T* dw = static_cast<T*>(p.filter_backprop);
  const int64_t C = g.in_depth, M = g.depth_multiplier, OC = C * M;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t m = 0; m < M; ++m) {
      Acc sum = 0;
      for (int64_t n = 0; n < g.batch; ++n) {
        for (int64_t oh = 0; oh < g.out_rows; ++oh) {
          const int64_t ih = oh * g.stride_rows + kh * g.dilation_rows - g.pad_top;
          if (ih < 0 || ih >= g.in_rows) continue;
          for (int64_t ow = 0; ow < g.out_cols; ++ow) {
            const int64_t iw = ow * g.stride_cols + kw * g.dilation_cols - g.pad_left;
            if (iw < 0 || iw >= g.in_cols) continue;
            int64_t xi, di;
            if (g.layout == Layout::kNHWC) {
              xi = ((n * g.in_rows + ih) * g.in_cols + iw) * C + c;
              di = ((n * g.out_rows + oh) * g.out_cols + ow) * OC + c * M + m;
            } else {
              xi = ((n * C + c) * g.in_rows + ih) * g.in_cols + iw;
              di = ((n * OC + c * M + m) * g.out_rows + oh) * g.out_cols + ow;
            }
            sum += static_cast<Acc>(Load(x + xi)) * static_cast<Acc>(Load(dy + di));
          }
        }
      }
      Store(dw + tap * OC + c * M + m, sum);
    }
  }
}

template <typename T>
void Run(const FilterGradParams& p, const ParallelFor& pf) {
  const Geometry& g = p.geo;
  pf(g.filter_rows * g.filter_cols, g.out_backprop_elements() + 1,
     [&](int64_t begin, int64_t end) {
       for (int64_t t = begin; t < end; ++t) Tap<T>(p, t);
     });
}

}  // namespace

int64_t CpuWorkspaceBytes(const Geometry&, DType) { return 0; }

Status RunCpu(const FilterGradParams& params, void*, const ParallelFor& pf) {
  switch (params.dtype) {
    case DType::kHalf: Run<half_t>(params, pf); break;
    case DType::kBfloat16: Run<bfloat16_t>(params, pf); break;
    case DType::kFloat: Run<float>(params, pf); break;
    case DType::kDouble: Run<double>(params, pf); break;
  }
  return Status::Ok();
}

}  // namespace dwop
