// The CUDA kernels' bodies, written once for two compilers:
//   - nvcc compiles them into __global__ kernels (cuda.cu.cc), one thread per
//     CUDA thread, Block = DeviceBlock;
//   - the host compiler compiles them into the emulator (cuda_emulator.cc),
//     which runs every thread of a block in turn, Block = HostBlock.
// The portability layer (DWOP_DEVICE, ToAcc/FromAcc, Fma, LoadVec, Unroll,
// DeviceBlock/HostBlock) is in portability.h, shared with conv_kernels.h.
// A block's program is a sequence of Steps; a Step runs a function on every
// thread and ends with a barrier (__syncthreads on the device; on the host the
// next Step starts after the last thread). Per-thread registers live in a
// State object (a local variable on the device, one element per thread on the
// host); shared memory is a byte buffer. WarpSum is a butterfly of
// __shfl_xor_sync. Products are explicit fused multiply-adds and sums plain
// additions, so both compilers round alike.
//
// Layouts (params.h): input [N,H,W,C] or [N,C,H,W], out_backprop [N,OH,OW,OC]
// or [N,OC,OH,OW] with OC = C*M, filter [KH,KW,C,M] = [tap][oc]. Output
// channel oc reads input channel oc / M.
//
// Three kernels (cuda_plan.h chooses):
//   RegisterNhwcBlock: a thread owns a vector of V output channels and a
//     KHT x KWT tap group; its accumulators stay in registers while it walks
//     its (row, column segment) work items. Lanes run over channel vectors,
//     so loads are coalesced vector loads. Per output column it loads one
//     out_backprop vector for all KHT x KWT taps (once per pass of rows, see
//     SlideRows). With unit column stride and dilation, each filter row's KWT
//     input vectors slide along the output row in a register window (one new
//     input load per filter row and column); otherwise each tap loads its
//     input. The block then adds its
//     lanes_y row groups in shared memory in a fixed order.
//   RegisterNchwBlock: a block owns one output channel and a tap group; lanes
//     run over output columns (coalesced), row groups over work items; a warp
//     butterfly then a fixed-order sum over warps reduce the block.
//   TiledBlock: a block owns one output channel and a 32x32 tap tile; each
//     thread a 4x8 tap micro-tile (rows ty + 8i, columns 8tx + j), each warp
//     one output row of an 8-row band. Input rows (a ring of x_rows rows, so
//     consecutive bands load only their new rows) and the out_backprop band
//     are staged in shared memory; per output column a thread reads one
//     broadcast out_backprop value and 4 new input values (conflict-free:
//     pitch = 1 mod 32) for 32 fused multiply-adds, the other 28 input values
//     coming from an 8-wide register window rotated by compile-time indices.
// Every block writes the sum over its part of the reduction (its split) for
// its taps and channels: into the workspace (splits > 1), added in split order
// by FinalizeElement, or straight into the filter (splits == 1).
#ifndef DWOP_CC_KERNELS_CUDA_FILTER_GRAD_KERNELS_H_
#define DWOP_CC_KERNELS_CUDA_FILTER_GRAD_KERNELS_H_

#include <cstdint>
#include <string>
#include <type_traits>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"
#include "cc/kernels/cuda/plan.h"
#include "cc/kernels/cuda/portability.h"

namespace dwop {
namespace gpu {

// Everything a kernel reads, by value (a kernel parameter). The planner has
// checked that every field fits its type (cuda_plan.cc, CheckRanges).
struct KernelArgs {
  int32_t batch, in_rows, in_cols, in_depth, multiplier, out_depth;
  int32_t filter_rows, filter_cols, out_rows, out_cols;
  int32_t stride_rows, stride_cols, dilation_rows, dilation_cols;
  int32_t pad_top, pad_left;
  int32_t filter_elements;
  int32_t threads, lanes_x, lanes_y, segment_cols, col_segments;
  int32_t channel_blocks, tap_groups_w, tap_groups;
  int32_t splits, work_total, work_per_split;
  int32_t chunk_cols, chunks, bands, x_rows, x_pitch;
  const void* input;
  const void* out_backprop;
  void* filter;
  void* partial;  // [splits][filter_elements] accumulators, or null
};

inline KernelArgs MakeKernelArgs(const FilterGradParams& p,
                                 const CudaPlan& plan, void* workspace) {
  const Geometry& g = p.geo;
  KernelArgs a;
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
  a.filter_elements = static_cast<int32_t>(g.filter_elements());
  a.threads = plan.threads;
  a.lanes_x = plan.lanes_x;
  a.lanes_y = plan.lanes_y;
  a.segment_cols = plan.segment_cols;
  a.col_segments = plan.col_segments;
  a.channel_blocks = static_cast<int32_t>(plan.channel_blocks);
  a.tap_groups_w = static_cast<int32_t>(plan.tap_groups_w);
  a.tap_groups = static_cast<int32_t>(plan.tap_groups_h * plan.tap_groups_w);
  a.splits = static_cast<int32_t>(plan.splits);
  a.work_total = static_cast<int32_t>(plan.work_total);
  a.work_per_split = static_cast<int32_t>(plan.work_per_split);
  a.chunk_cols = plan.chunk_cols;
  a.chunks = plan.chunks;
  a.bands = plan.bands;
  a.x_rows = plan.x_rows;
  a.x_pitch = plan.x_pitch;
  a.input = p.input;
  a.out_backprop = p.out_backprop;
  a.filter = p.filter_backprop;
  a.partial = plan.splits > 1 ? workspace : nullptr;
  return a;
}

// Where a block's sum for (tap, oc) goes: its split's partial sums, or the
// filter when the reduction is not split.
template <typename T>
DWOP_DEVICE void Emit(const KernelArgs& a, int split, int tap, int oc,
                      Acc<T> sum) {
  const int64_t e = static_cast<int64_t>(tap) * a.out_depth + oc;
  if (a.partial != nullptr) {
    static_cast<Acc<T>*>(
        a.partial)[static_cast<int64_t>(split) * a.filter_elements + e] = sum;
  } else {
    static_cast<T*>(a.filter)[e] = FromAcc<T>(sum);
  }
}

// The second pass: filter[e] = sum of the splits' partials, in split order.
template <typename T>
DWOP_DEVICE void FinalizeElement(const KernelArgs& a, int64_t e) {
  const Acc<T>* partial = static_cast<const Acc<T>*>(a.partial);
  Acc<T> sum = partial[e];
  for (int s = 1; s < a.splits; ++s) {
    sum += partial[static_cast<int64_t>(s) * a.filter_elements + e];
  }
  static_cast<T*>(a.filter)[e] = FromAcc<T>(sum);
}

// ---------------------------------------------------------------------------
// Register kernels.

template <typename A, int KHT, int KWT, int V>
struct RegisterState {
  A acc[KHT][KWT][V];
};

template <typename A, int KHT, int KWT, int V>
DWOP_DEVICE void ZeroAccumulators(RegisterState<A, KHT, KWT, V>& s) {
  DWOP_UNROLL
  for (int i = 0; i < KHT; ++i) {
    DWOP_UNROLL
    for (int j = 0; j < KWT; ++j) {
      DWOP_UNROLL
      for (int v = 0; v < V; ++v) s.acc[i][j][v] = A(0);
    }
  }
}

// The input rows of a tap group for one output row: x_rows[i] points at
// input row oh * stride_rows + (kh0 + i) * dilation_rows - pad_top (plus the
// channel offset) when that row exists and kh0 + i is a tap, else is null.
template <int KHT, typename T>
struct InputRows {
  const T* row[KHT];
};

// The input channel vector at column `col` of input row `x_row`, zero outside
// the image (x_row null: the row is outside).
template <int V, typename T>
DWOP_DEVICE void LoadInput(const KernelArgs& a, const T* x_row, int col,
                           Acc<T> (&out)[V]) {
  if (x_row != nullptr && col >= 0 && col < a.in_cols) {
    LoadVec<V>(x_row + col * a.in_depth, out);
  } else {
    DWOP_UNROLL
    for (int v = 0; v < V; ++v) out[v] = Acc<T>(0);
  }
}

// Filter rows [I0, I0 + NR) of the tap group along output columns
// [ow_begin, ow_end) of one output row, unit column stride and dilation: tap
// (i, j) at output column ow reads input column ow + c0 + j of row i. win[i]
// holds row i's KWT input vectors of the current column in a ring: at step U
// of a KWT-step round, tap j's input is in slot (U + j) % KWT and the one new
// input (tap KWT - 1) goes to slot (U + KWT - 1) % KWT. Per column: one
// out_backprop load and NR input loads for NR * KWT * V fused multiply-adds.
template <typename T, int KHT, int KWT, int V, int I0, int NR>
DWOP_DEVICE void SlidePass(const KernelArgs& a, const InputRows<KHT, T>& x,
                           const T* dy_row, int kw0, int ow_begin, int ow_end,
                           Acc<T> (&acc)[KHT][KWT][V]) {
  using A = Acc<T>;
  const int c0 = kw0 - a.pad_left;
  A win[NR][KWT][V];
  Unroll<NR>([&](auto i) {
    constexpr int I = decltype(i)::value;
    Unroll<KWT - 1>([&](auto j) {
      constexpr int J = decltype(j)::value;
      LoadInput<V>(a, x.row[I0 + I], ow_begin + c0 + J, win[I][J]);
    });
  });
  for (int ow0 = ow_begin; ow0 < ow_end; ow0 += KWT) {
    Unroll<KWT>([&](auto u) {
      constexpr int U = decltype(u)::value;
      const int ow = ow0 + U;
      if (ow >= ow_end) return;
      A d[V];
      LoadVec<V>(dy_row + ow * a.out_depth, d);
      Unroll<NR>([&](auto i) {
        constexpr int I = decltype(i)::value;
        LoadInput<V>(a, x.row[I0 + I], ow + c0 + KWT - 1,
                     win[I][(U + KWT - 1) % KWT]);
        Unroll<KWT>([&](auto j) {
          constexpr int J = decltype(j)::value;
          DWOP_UNROLL
          for (int v = 0; v < V; ++v) {
            acc[I0 + I][J][v] =
                Fma(win[I][(U + J) % KWT][v], d[v], acc[I0 + I][J][v]);
          }
        });
      });
    });
  }
}

// The whole tap group, in passes of filter rows: as many rows per pass as
// keep accumulators plus windows within 80 32-bit registers (one pass for
// 3x3 x 4 channels, 5x5 and 8x1 x 4; passes of 4 and 3 rows for 7x7), so
// that a thread fits the ~128 registers of two 256-thread blocks per SM.
template <typename T, int KHT, int KWT, int V>
DWOP_DEVICE void SlideRows(const KernelArgs& a, const InputRows<KHT, T>& x,
                           const T* dy_row, int kw0, int ow_begin, int ow_end,
                           Acc<T> (&acc)[KHT][KWT][V]) {
  constexpr int kWords = static_cast<int>(sizeof(Acc<T>)) / 4;
  constexpr int kFree = 80 - KHT * KWT * V * kWords;
  constexpr int kFit = kFree / (KWT * V * kWords);
  constexpr int kRows = kFit < 1 ? 1 : kFit > KHT ? KHT : kFit;
  Unroll<(KHT + kRows - 1) / kRows>([&](auto p) {
    constexpr int I0 = decltype(p)::value * kRows;
    constexpr int NR = KHT - I0 < kRows ? KHT - I0 : kRows;
    SlidePass<T, KHT, KWT, V, I0, NR>(a, x, dy_row, kw0, ow_begin, ow_end, acc);
  });
}

// The same for any column stride and dilation: each tap loads its input.
template <typename T, int KHT, int KWT, int V>
DWOP_DEVICE void StrideRows(const KernelArgs& a, const InputRows<KHT, T>& x,
                            const T* dy_row, int kw0, int ow_begin, int ow_end,
                            Acc<T> (&acc)[KHT][KWT][V]) {
  using A = Acc<T>;
  for (int ow = ow_begin; ow < ow_end; ++ow) {
    A d[V];
    LoadVec<V>(dy_row + ow * a.out_depth, d);
    const int col0 = ow * a.stride_cols + kw0 * a.dilation_cols - a.pad_left;
    Unroll<KHT>([&](auto i) {
      constexpr int I = decltype(i)::value;
      Unroll<KWT>([&](auto j) {
        constexpr int J = decltype(j)::value;
        A xv[V];
        LoadInput<V>(a, x.row[I], col0 + J * a.dilation_cols, xv);
        DWOP_UNROLL
        for (int v = 0; v < V; ++v) {
          acc[I][J][v] = Fma(xv[v], d[v], acc[I][J][v]);
        }
      });
    });
  }
}

// Block decomposition shared by the kernels: tap group fastest (blocks that
// read the same data run together), then channel block, then split.
struct BlockCoords {
  int tap_group, channel_block, split;
};

DWOP_DEVICE BlockCoords Coords(const KernelArgs& a, int block) {
  const int rest = block / a.tap_groups;
  return BlockCoords{block - rest * a.tap_groups, rest % a.channel_blocks,
                     rest / a.channel_blocks};
}

template <typename T, int KHT, int KWT, int V, class Block>
DWOP_DEVICE void RegisterNhwcBlock(const KernelArgs& a, int block, Block& ex,
                                   RegisterState<Acc<T>, KHT, KWT, V>* st,
                                   unsigned char* smem) {
  using A = Acc<T>;
  using State = RegisterState<A, KHT, KWT, V>;
  const T* x = static_cast<const T*>(a.input);
  const T* dy = static_cast<const T*>(a.out_backprop);
  const BlockCoords bc = Coords(a, block);
  const int kh0 = bc.tap_group / a.tap_groups_w * KHT;
  const int kw0 = bc.tap_group % a.tap_groups_w * KWT;
  const int work_begin = bc.split * a.work_per_split;
  const int work_end = Min(work_begin + a.work_per_split, a.work_total);
  const bool unit_cols = a.stride_cols == 1 && a.dilation_cols == 1;
  const int64_t x_row_pitch = static_cast<int64_t>(a.in_cols) * a.in_depth;
  const int64_t dy_row_pitch = static_cast<int64_t>(a.out_cols) * a.out_depth;

  ex.Step(st, [&](int tid, State& s) {
    ZeroAccumulators(s);
    const int tx = tid % a.lanes_x, ty = tid / a.lanes_x;
    const int oc0 = (bc.channel_block * a.lanes_x + tx) * V;
    if (ty >= a.lanes_y || oc0 >= a.out_depth) return;
    // V > 1 only with depth multiplier 1: the vector's input channels are
    // its output channels.
    const int xc = V > 1 ? oc0 : oc0 / a.multiplier;
    for (int w = work_begin + ty; w < work_end; w += a.lanes_y) {
      const int row = w / a.col_segments;
      const int ow_begin = (w - row * a.col_segments) * a.segment_cols;
      const int ow_end = Min(ow_begin + a.segment_cols, a.out_cols);
      const int n = row / a.out_rows;
      const int oh = row - n * a.out_rows;
      const T* dy_row = dy + row * dy_row_pitch + oc0;
      InputRows<KHT, T> rows;
      Unroll<KHT>([&](auto i) {
        constexpr int I = decltype(i)::value;
        const int kh = kh0 + I;
        const int ih = oh * a.stride_rows + kh * a.dilation_rows - a.pad_top;
        rows.row[I] =
            kh < a.filter_rows && ih >= 0 && ih < a.in_rows
                ? x + (static_cast<int64_t>(n) * a.in_rows + ih) * x_row_pitch +
                      xc
                : nullptr;
      });
      if (unit_cols) {
        SlideRows<T, KHT, KWT, V>(a, rows, dy_row, kw0, ow_begin, ow_end,
                                  s.acc);
      } else {
        StrideRows<T, KHT, KWT, V>(a, rows, dy_row, kw0, ow_begin, ow_end,
                                   s.acc);
      }
    }
  });

  // Sum the lanes_y row groups, one filter row of the group at a time:
  // red[ty][(j * lanes_x + tx) * V + v], added over ty in order.
  A* red = reinterpret_cast<A*>(smem);
  const int elems = a.lanes_x * V * KWT;
  Unroll<KHT>([&](auto i) {
    constexpr int I = decltype(i)::value;
    const int kh = kh0 + I;
    if (kh >= a.filter_rows) return;  // the same for the whole block
    ex.Step(st, [&](int tid, State& s) {
      const int tx = tid % a.lanes_x, ty = tid / a.lanes_x;
      Unroll<KWT>([&](auto j) {
        constexpr int J = decltype(j)::value;
        DWOP_UNROLL
        for (int v = 0; v < V; ++v) {
          red[ty * elems + (J * a.lanes_x + tx) * V + v] = s.acc[I][J][v];
        }
      });
    });
    ex.Step(st, [&](int tid, State&) {
      for (int e = tid; e < elems; e += a.threads) {
        A sum = red[e];
        for (int y = 1; y < a.lanes_y; ++y) sum += red[y * elems + e];
        const int v = e % V;
        const int tx = e / V % a.lanes_x;
        const int kw = kw0 + e / (V * a.lanes_x);
        const int oc = (bc.channel_block * a.lanes_x + tx) * V + v;
        if (kw < a.filter_cols && oc < a.out_depth) {
          Emit<T>(a, bc.split, kh * a.filter_cols + kw, oc, sum);
        }
      }
    });
  });
}

template <typename T, int KHT, int KWT, class Block>
DWOP_DEVICE void RegisterNchwBlock(const KernelArgs& a, int block, Block& ex,
                                   RegisterState<Acc<T>, KHT, KWT, 1>* st,
                                   unsigned char* smem) {
  using A = Acc<T>;
  using State = RegisterState<A, KHT, KWT, 1>;
  const T* x = static_cast<const T*>(a.input);
  const T* dy = static_cast<const T*>(a.out_backprop);
  const BlockCoords bc = Coords(a, block);
  const int oc = bc.channel_block;
  const int c = oc / a.multiplier;
  const int kh0 = bc.tap_group / a.tap_groups_w * KHT;
  const int kw0 = bc.tap_group % a.tap_groups_w * KWT;
  const int work_begin = bc.split * a.work_per_split;
  const int work_end = Min(work_begin + a.work_per_split, a.work_total);
  const int64_t plane = static_cast<int64_t>(a.in_rows) * a.in_cols;

  ex.Step(st, [&](int tid, State& s) {
    ZeroAccumulators(s);
    const int tx = tid % a.lanes_x, ty = tid / a.lanes_x;
    if (ty >= a.lanes_y) return;
    for (int w = work_begin + ty; w < work_end; w += a.lanes_y) {
      const int n = w / a.out_rows;
      const int oh = w - n * a.out_rows;
      const T* dy_row =
          dy +
          ((static_cast<int64_t>(n) * a.out_depth + oc) * a.out_rows + oh) *
              a.out_cols;
      const T* x_plane = x + (static_cast<int64_t>(n) * a.in_depth + c) * plane;
      InputRows<KHT, T> rows;
      Unroll<KHT>([&](auto i) {
        constexpr int I = decltype(i)::value;
        const int kh = kh0 + I;
        const int ih = oh * a.stride_rows + kh * a.dilation_rows - a.pad_top;
        rows.row[I] = kh < a.filter_rows && ih >= 0 && ih < a.in_rows
                          ? x_plane + static_cast<int64_t>(ih) * a.in_cols
                          : nullptr;
      });
      for (int ow = tx; ow < a.out_cols; ow += a.lanes_x) {
        const A d = ToAcc(dy_row[ow]);
        const int col0 =
            ow * a.stride_cols + kw0 * a.dilation_cols - a.pad_left;
        Unroll<KHT>([&](auto i) {
          constexpr int I = decltype(i)::value;
          const T* x_row = rows.row[I];
          Unroll<KWT>([&](auto j) {
            constexpr int J = decltype(j)::value;
            const int col = col0 + J * a.dilation_cols;
            const A xv = x_row != nullptr && col >= 0 && col < a.in_cols
                             ? ToAcc(x_row[col])
                             : A(0);
            s.acc[I][J][0] = Fma(xv, d, s.acc[I][J][0]);
          });
        });
      }
    }
  });

  Unroll<KHT>([&](auto i) {
    Unroll<KWT>([&](auto j) {
      ex.WarpSum(st, [&](State& s) -> A& {
        return s.acc[decltype(i)::value][decltype(j)::value][0];
      });
    });
  });
  // red[warp][i * KWT + j], added over warps in order.
  A* red = reinterpret_cast<A*>(smem);
  constexpr int kTaps = KHT * KWT;
  const int warps = a.threads / 32;
  ex.Step(st, [&](int tid, State& s) {
    if (tid % 32 != 0) return;
    Unroll<KHT>([&](auto i) {
      Unroll<KWT>([&](auto j) {
        constexpr int I = decltype(i)::value, J = decltype(j)::value;
        red[tid / 32 * kTaps + I * KWT + J] = s.acc[I][J][0];
      });
    });
  });
  ex.Step(st, [&](int tid, State&) {
    for (int e = tid; e < kTaps; e += a.threads) {
      A sum = red[e];
      for (int w = 1; w < warps; ++w) sum += red[w * kTaps + e];
      const int kh = kh0 + e / KWT, kw = kw0 + e % KWT;
      if (kh < a.filter_rows && kw < a.filter_cols) {
        Emit<T>(a, bc.split, kh * a.filter_cols + kw, oc, sum);
      }
    }
  });
}

// ---------------------------------------------------------------------------
// The tiled kernel (kTiledThreads threads, tiles of kTiledTile taps).

template <typename A>
struct TiledState {
  A acc[4][8];  // taps (ty + 8i, 8tx + j) of the tile
};

template <typename T, bool kNchw, class Block>
DWOP_DEVICE void TiledBlock(const KernelArgs& a, int block, Block& ex,
                            TiledState<Acc<T>>* st, unsigned char* smem) {
  using A = Acc<T>;
  using State = TiledState<A>;
  static_assert(kTiledThreads == 256 && kTiledBandRows == 8 && kTiledTile == 32,
                "the tiled kernel's thread layout assumes these constants");
  const T* x = static_cast<const T*>(a.input);
  const T* dy = static_cast<const T*>(a.out_backprop);
  const BlockCoords bc = Coords(a, block);
  const int oc = bc.channel_block;
  const int c = oc / a.multiplier;
  const int th0 = bc.tap_group / a.tap_groups_w * kTiledTile;
  const int tw0 = bc.tap_group % a.tap_groups_w * kTiledTile;
  const int unit_begin = bc.split * a.work_per_split;
  const int unit_end = Min(unit_begin + a.work_per_split, a.work_total);
  A* xs = reinterpret_cast<A*>(smem);  // [x_rows][x_pitch], a ring of rows
  A* ds = xs + a.x_rows * a.x_pitch;   // [kTiledBandRows][chunk_cols]

  ex.Step(st, [&](int, State& s) {
    DWOP_UNROLL
    for (int i = 0; i < 4; ++i) {
      DWOP_UNROLL
      for (int j = 0; j < 8; ++j) s.acc[i][j] = A(0);
    }
  });
  for (int u = unit_begin; u < unit_end; ++u) {
    const int band = u % a.bands;
    const int rest = u / a.bands;
    const int chunk = rest % a.chunks;
    const int n = rest / a.chunks;
    const int oh0 = band * kTiledBandRows;
    const int ow0 = chunk * a.chunk_cols;
    const int cols = Min(a.chunk_cols, a.out_cols - ow0);
    const int x_cols = cols + kTiledTile - 1;
    // Input rows [first, first + x_rows) feed this band; input row r lives in
    // ring slot (r + pad_top) % x_rows. The previous unit (the band above,
    // same image and chunk) left rows [first - 8 * stride_rows, ...) there.
    const int first = oh0 * a.stride_rows + th0 * a.dilation_rows - a.pad_top;
    const int col_origin = ow0 + tw0 - a.pad_left;
    const int reuse_end = first - kTiledBandRows * a.stride_rows + a.x_rows;
    const int load_begin =
        u > unit_begin && band > 0 && reuse_end > first ? reuse_end : first;
    const int load_rows = first + a.x_rows - load_begin;

    ex.Step(st, [&](int tid, State&) {
      for (int k = tid; k < load_rows * x_cols; k += kTiledThreads) {
        const int r = load_begin + k / x_cols;
        const int q = k % x_cols;
        const int col = col_origin + q;
        A value = A(0);
        if (r >= 0 && r < a.in_rows && col >= 0 && col < a.in_cols) {
          const int64_t offset =
              kNchw ? ((static_cast<int64_t>(n) * a.in_depth + c) * a.in_rows +
                       r) * a.in_cols +
                          col
                    : ((static_cast<int64_t>(n) * a.in_rows + r) * a.in_cols +
                       col) * a.in_depth +
                          c;
          value = ToAcc(x[offset]);
        }
        xs[(r + a.pad_top) % a.x_rows * a.x_pitch + q] = value;
      }
      for (int k = tid; k < kTiledBandRows * cols; k += kTiledThreads) {
        const int g = k / cols;
        const int q = k - g * cols;
        const int oh = oh0 + g;
        A value = A(0);
        if (oh < a.out_rows) {
          const int64_t offset =
              kNchw
                  ? ((static_cast<int64_t>(n) * a.out_depth + oc) * a.out_rows +
                     oh) * a.out_cols +
                        ow0 + q
                  : ((static_cast<int64_t>(n) * a.out_rows + oh) * a.out_cols +
                     ow0 + q) *
                            a.out_depth +
                        oc;
          value = ToAcc(dy[offset]);
        }
        ds[g * a.chunk_cols + q] = value;
      }
    });

    ex.Step(st, [&](int tid, State& s) {
      const int warp = tid / 32, lane = tid % 32;
      if (oh0 + warp >= a.out_rows) return;
      const int ty = lane % 8, tx = lane / 8;
      const A* xr[4];
      DWOP_UNROLL
      for (int i = 0; i < 4; ++i) {
        const int r =
            first + warp * a.stride_rows + (ty + 8 * i) * a.dilation_rows;
        xr[i] = xs + (r + a.pad_top) % a.x_rows * a.x_pitch + 8 * tx;
      }
      const A* dr = ds + warp * a.chunk_cols;
      // Tap (ty + 8i, 8tx + j) at output column o reads xr[i][o + j]; the
      // window ring works as in SlideRows with 8 slots.
      A win[4][8];
      DWOP_UNROLL
      for (int i = 0; i < 4; ++i) {
        DWOP_UNROLL
        for (int j = 0; j < 7; ++j) win[i][j] = xr[i][j];
      }
      for (int o0 = 0; o0 < cols; o0 += 8) {
        Unroll<8>([&](auto u) {
          constexpr int U = decltype(u)::value;
          const int o = o0 + U;
          if (o >= cols) return;
          DWOP_UNROLL
          for (int i = 0; i < 4; ++i) win[i][(U + 7) % 8] = xr[i][o + 7];
          const A d = dr[o];
          Unroll<4>([&](auto i) {
            constexpr int I = decltype(i)::value;
            Unroll<8>([&](auto j) {
              constexpr int J = decltype(j)::value;
              s.acc[I][J] = Fma(win[I][(U + J) % 8], d, s.acc[I][J]);
            });
          });
        });
      }
    });
  }

  // Sum the 8 warps (pixel groups), one micro-tile row i at a time:
  // red[warp][lane * 8 + j], added over warps in order. Reuses the tiles.
  A* red = reinterpret_cast<A*>(smem);
  Unroll<4>([&](auto i) {
    constexpr int I = decltype(i)::value;
    ex.Step(st, [&](int tid, State& s) {
      DWOP_UNROLL
      for (int j = 0; j < 8; ++j) red[tid * 8 + j] = s.acc[I][j];
    });
    ex.Step(st, [&](int tid, State&) {
      A sum = red[tid];
      for (int w = 1; w < kTiledThreads / 32; ++w) sum += red[w * 256 + tid];
      const int lane = tid / 8, j = tid % 8;
      const int kh = th0 + lane % 8 + 8 * I;
      const int kw = tw0 + 8 * (lane / 8) + j;
      if (kh < a.filter_rows && kw < a.filter_cols) {
        Emit<T>(a, bc.split, kh * a.filter_cols + kw, oc, sum);
      }
    });
  });
}

// ---------------------------------------------------------------------------
// Dispatch from a plan to the compiled instantiations, shared by the CUDA
// launcher and the emulator so that both cover the same set. The visitor
// provides
//   template <typename T, int KHT, int KWT, int V> Status Nhwc();
//   template <typename T, int KHT, int KWT> Status Nchw();
//   template <typename T, bool kNchw> Status Tiled();
//   template <typename T> Status Finalize();   // called when splits > 1

template <typename T, TapConfig kConfig, class Visitor>
Status VisitRegister(const CudaPlan& plan, Visitor& vis) {
  constexpr int kRows = TapConfigRows(kConfig);
  constexpr int kCols = TapConfigCols(kConfig);
  constexpr int kWidest = RegisterVectorWidth(kConfig, kDTypeOf<T>);
  if (plan.kernel == CudaKernel::kRegisterNchw) {
    return vis.template Nchw<T, kRows, kCols>();
  }
  if (plan.vector == 1) return vis.template Nhwc<T, kRows, kCols, 1>();
  if (plan.vector == kWidest) {
    return vis.template Nhwc<T, kRows, kCols, kWidest>();
  }
  return Status::Internal("no register kernel with vector width " +
                          std::to_string(plan.vector));
}

template <typename T, class Visitor>
Status VisitType(const CudaPlan& plan, Layout layout, Visitor& vis) {
  Status status;
  if (plan.kernel == CudaKernel::kTiled) {
    status = layout == Layout::kNCHW ? vis.template Tiled<T, true>()
                                     : vis.template Tiled<T, false>();
  } else if (plan.kernel == CudaKernel::kRegisterNhwc ||
             plan.kernel == CudaKernel::kRegisterNchw) {
    switch (plan.config) {
#define DWOP_REGISTER_CASE(config)                           \
  case TapConfig::config:                                    \
    status = VisitRegister<T, TapConfig::config>(plan, vis); \
    break;
      DWOP_REGISTER_CASE(k1x1)
      DWOP_REGISTER_CASE(k3x3)
      DWOP_REGISTER_CASE(k5x5)
      DWOP_REGISTER_CASE(k7x7)
      DWOP_REGISTER_CASE(k8x1)
      DWOP_REGISTER_CASE(k1x8)
#undef DWOP_REGISTER_CASE
      default:
        return Status::Internal("register plan with a tile configuration");
    }
  } else {
    return Status::Internal("VisitType called for a plan without kernels");
  }
  if (!status.ok() || plan.splits <= 1) return status;
  return vis.template Finalize<T>();
}

// Runs the plan's kernels through `vis` (plan.kernel must be one of the
// three kernel families).
template <class Visitor>
Status VisitPlan(const CudaPlan& plan, DType dtype, Layout layout,
                 Visitor& vis) {
  switch (dtype) {
    case DType::kHalf:
      return VisitType<half_t>(plan, layout, vis);
    case DType::kBfloat16:
      return VisitType<bfloat16_t>(plan, layout, vis);
    case DType::kFloat:
      return VisitType<float>(plan, layout, vis);
    case DType::kDouble:
      return VisitType<double>(plan, layout, vis);
  }
  return Status::InvalidArgument("unknown dtype");
}

}  // namespace gpu
}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CUDA_FILTER_GRAD_KERNELS_H_
