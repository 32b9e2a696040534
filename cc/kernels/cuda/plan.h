// Launch planning for the CUDA filter gradient: which kernel, which
// compile-time configuration, block shape, grid, split of the reduction,
// shared memory and workspace. Plain host C++ (no CUDA types, no CUDA
// runtime): compiled into every build, so the plans are unit-tested on
// machines without a GPU, and the CUDA launcher (cuda.cu.cc) and the host
// emulator (cuda_emulator.cc) run the same plan.
//
// Determinism: a plan depends only on the geometry, the dtype, the buffers'
// alignment and CudaDevice; the kernels add in an order fixed by the plan and
// never use float atomics. So the result is bitwise identical from run to run
// on a given device model (a GPU with another SM count may split the reduction
// differently and round differently).
#ifndef DWOP_CC_KERNELS_CUDA_PLAN_H_
#define DWOP_CC_KERNELS_CUDA_PLAN_H_

#include <cstdint>
#include <string>

#include "cc/kernels/common/params.h"
#include "cc/kernels/common/status.h"

namespace dwop {

// What the planner needs to know about the GPU.
struct CudaDevice {
  int32_t sm_count = 132;  // multiprocessors (H100 SXM)
  // Dynamic shared memory a block may use without opting in.
  int64_t shared_memory_per_block = 48 * 1024;
};

// Which kernel family to use. kAuto is the op's choice; the others exist for
// tests and tuning (python/gpu_check.py --paths), and fail with
// kInvalidArgument where the family cannot run the problem.
enum class CudaPath : int32_t { kAuto = 0, kRegister = 1, kTiled = 2 };

enum class CudaKernel : int32_t {
  kNothing = 0,       // the filter gradient has no elements
  kZero = 1,          // nothing to sum: the output is zero-filled
  kRegisterNhwc = 2,  // register tap groups, lanes over channel vectors
  kRegisterNchw = 3,  // register tap groups, lanes over output columns
  kTiled = 4,         // shared-memory tiles, 32x32 tap tile per warp
};

// The compile-time tap-group shapes of the register kernels (taps per thread:
// rows x cols) and the tiled kernel's 32x32 tile.
enum class TapConfig : int32_t {
  k1x1 = 0,
  k3x3 = 1,
  k5x5 = 2,
  k7x7 = 3,
  k8x1 = 4,
  k1x8 = 5,
  kTile32 = 6,
};

// Threads per block of the register kernels and of the finalize pass.
constexpr int32_t kRegisterThreads = 256;
constexpr int32_t kFinalizeThreads = 256;

// Constants of the tiled kernel (cuda_kernels.h relies on them).
constexpr int32_t kTiledThreads = 256;  // 8 warps
constexpr int32_t kTiledBandRows = 8;   // output rows per unit: one per warp
constexpr int32_t kTiledTile = 32;      // taps per tile side
constexpr int32_t kTiledMaxChunk = 64;  // output columns per unit at most

// Whether p starts on a multiple of `bytes`.
inline bool Aligned(const void* p, int64_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0;
}

// Whether input and out_backprop both do: the vector loads a plan was made
// for need it.
inline bool BuffersAligned(const FilterGradParams& p, int64_t bytes) {
  return Aligned(p.input, bytes) && Aligned(p.out_backprop, bytes);
}

// Rows and columns of each TapConfig, in enum order (compile-time template
// arguments of the kernels, too).
inline constexpr int32_t kTapConfigShapes[][2] = {
    {1, 1}, {3, 3}, {5, 5}, {7, 7}, {8, 1}, {1, 8}, {kTiledTile, kTiledTile}};
constexpr int32_t TapConfigRows(TapConfig config) {
  return kTapConfigShapes[static_cast<int>(config)][0];
}
constexpr int32_t TapConfigCols(TapConfig config) {
  return kTapConfigShapes[static_cast<int>(config)][1];
}

// The widest channel vector (output channels per thread) the register NHWC
// kernel is compiled for, per tap group and dtype: accumulators and sliding
// windows stay within the ~128 registers of two blocks per SM. Vector 1 is
// always compiled.
constexpr int32_t RegisterVectorWidth(TapConfig config, DType dtype) {
  return config == TapConfig::k7x7 || config == TapConfig::k5x5 ? 1
         : dtype == DType::kDouble                              ? 2
                                                                : 4;
}

struct CudaPlan {
  CudaKernel kernel = CudaKernel::kNothing;
  TapConfig config = TapConfig::k3x3;
  int32_t tap_rows = 0;  // taps per thread group (register) or tile (tiled)
  int32_t tap_cols = 0;
  int32_t vector = 1;   // output channels per thread (register NHWC)
  int32_t threads = 0;  // per block
  // Register kernels: lanes_x threads over channel vectors (NHWC) or output
  // columns (NCHW), lanes_y over work items. threads >= lanes_x * lanes_y.
  int32_t lanes_x = 0;
  int32_t lanes_y = 0;
  // NHWC: output columns are cut into col_segments pieces of segment_cols.
  int32_t col_segments = 1;
  int32_t segment_cols = 0;
  // Tiled kernel: units of kTiledBandRows output rows x chunk_cols columns.
  int32_t chunk_cols = 0;
  int32_t chunks = 0;
  int32_t bands = 0;
  int32_t x_rows = 0;   // input rows held in shared memory
  int32_t x_pitch = 0;  // shared-memory row pitch (elements, 1 mod 32)
  // Grid: blocks = channel_blocks * tap_groups_h * tap_groups_w * splits.
  int64_t channel_blocks = 0;
  int64_t tap_groups_h = 0;
  int64_t tap_groups_w = 0;
  int64_t splits = 0;
  int64_t work_total = 0;  // work items: rows x segments, or tiled units
  int64_t work_per_split = 0;
  int64_t blocks = 0;
  int64_t smem_bytes = 0;
  // Per-split partial sums (float, double for double), then a second kernel
  // adds them in split order; 0 when splits == 1 (written directly).
  int64_t workspace_bytes = 0;
  int64_t finalize_blocks = 0;
};

// Plans `params` (pointers only matter for their alignment) on `device`.
// kInvalidArgument when a forced path cannot run the problem, or when a
// dimension exceeds what the kernels index with 32-bit integers (element
// offsets are 64-bit; single dimensions, N*OH and W*C must stay below 2^30).
Status PlanCuda(const FilterGradParams& params, const CudaDevice& device,
                CudaPath path, CudaPlan* plan);

// The 32-bit indexing limits of the CUDA kernels, shared by this planner and
// the forward/input-gradient one (conv_plan.cc): InvalidArgument naming
// `what`, its value and the limit.
Status CudaTooLarge(const std::string& what, int64_t value, int64_t limit);

// Every single dimension of `g` at most 2^30 (so that sums of a few of them
// and the products the planners form never overflow), and the spans of input
// rows and columns the kernels reach within int32: (out + extra_out) * stride
// + (filter + extra_taps) * dilation + pad + in, per axis, where the extras
// are the output positions and taps a kernel may form past the last ones
// (tiles, bands, runs of columns).
Status CheckCudaSpans(const Geometry& g, int64_t extra_out_rows,
                      int64_t extra_out_cols, int64_t extra_taps_rows,
                      int64_t extra_taps_cols);

}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CUDA_PLAN_H_
