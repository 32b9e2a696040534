#include "cc/kernels/cuda/plan.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

#include "cc/kernels/common/geometry.h"

namespace dwop {
namespace {

constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
// Single dimensions stay below this, so that sums of a few of them and the
// products the planners form never overflow (see CheckCudaSpans).
constexpr int64_t kDimLimit = int64_t{1} << 30;
// The per-split partial sums never take more device memory than this.
constexpr int64_t kMaxSplitWorkspaceBytes = int64_t{256} << 20;
// Blocks per SM the register kernels aim at: about two resident (at most 128
// registers per thread) times two waves.
constexpr int64_t kRegisterBlocksPerSm = 4;
// Fewest output columns a register NHWC thread walks in one segment: the
// sliding window reloads KWT - 1 columns at every segment start.
constexpr int64_t kMinSegmentCols = 8;

int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }

// Every index the kernels form in 32-bit arithmetic stays in range: input
// rows/columns of any tap (including the padded taps of a tap group or tile,
// hence the margins), work-item counts and within-row offsets. Element offsets
// of whole tensors are formed in 64 bits.
Status CheckRanges(const Geometry& g) {
  const int64_t margin = 2 * kTiledTile;
  DWOP_RETURN_IF_ERROR(
      CheckCudaSpans(g, kTiledBandRows, margin, margin, margin));
  if (g.batch * g.out_rows > kDimLimit) {
    return CudaTooLarge("batch * out_rows", g.batch * g.out_rows, kDimLimit);
  }
  if (g.in_cols * g.in_depth > kInt32Max) {
    return CudaTooLarge("in_cols * in_depth", g.in_cols * g.in_depth,
                        kInt32Max);
  }
  if (g.out_cols * g.out_depth() > kInt32Max) {
    return CudaTooLarge("out_cols * out_depth", g.out_cols * g.out_depth(),
                        kInt32Max);
  }
  return Status::Ok();
}

// Picks the number of splits of `work_total` items for `base_blocks` blocks
// per split, aiming at `target_blocks`; every split gets a multiple of
// `granule` items and none is empty. Splits get at least `min_granules`
// granules (each block's final reduction is then amortised over that much
// work) unless that leaves fewer than `min_blocks` blocks. Keeps the
// workspace (splits * partial_bytes) under kMaxSplitWorkspaceBytes.
void ChooseSplits(int64_t work_total, int64_t granule, int64_t min_granules,
                  int64_t base_blocks, int64_t target_blocks,
                  int64_t min_blocks, int64_t partial_bytes, CudaPlan* plan) {
  const int64_t wanted =
      std::max<int64_t>(1, CeilDiv(target_blocks, base_blocks));
  int64_t splits = std::min(
      wanted, std::max<int64_t>(1, work_total / (granule * min_granules)));
  if (splits * base_blocks < min_blocks) {
    splits =
        std::min(wanted, std::max<int64_t>(1, CeilDiv(work_total, granule)));
  }
  splits = std::min(
      splits, std::max<int64_t>(1, kMaxSplitWorkspaceBytes / partial_bytes));
  const int64_t per_split = RoundUp(CeilDiv(work_total, splits), granule);
  plan->work_total = work_total;
  plan->work_per_split = per_split;
  plan->splits = CeilDiv(work_total, per_split);
}

// The tap group of the register kernels that wastes the least: padded taps
// plus a charge per group (each group reads input and out_backprop again).
TapConfig ChooseRegisterConfig(const Geometry& g) {
  static constexpr TapConfig kConfigs[] = {TapConfig::k3x3, TapConfig::k5x5,
                                           TapConfig::k7x7, TapConfig::k1x1,
                                           TapConfig::k8x1, TapConfig::k1x8};
  TapConfig best = kConfigs[0];
  int64_t best_cost = std::numeric_limits<int64_t>::max();
  for (TapConfig c : kConfigs) {
    const int64_t rows = TapConfigRows(c), cols = TapConfigCols(c);
    const int64_t groups =
        CeilDiv(g.filter_rows, rows) * CeilDiv(g.filter_cols, cols);
    const int64_t cost = groups * rows * cols + 4 * groups;
    if (cost < best_cost) {
      best = c;
      best_cost = cost;
    }
  }
  return best;
}

// Output channels per thread of the register NHWC kernel: the widest vector
// compiled for the configuration when every channel vector is aligned and
// belongs to one input channel (depth multiplier 1), else 1.
int32_t RegisterVector(const FilterGradParams& p, TapConfig config) {
  const Geometry& g = p.geo;
  const int32_t widest = RegisterVectorWidth(config, p.dtype);
  const int64_t bytes = widest * DTypeSize(p.dtype);
  if (widest > 1 && g.depth_multiplier == 1 && g.in_depth % widest == 0 &&
      BuffersAligned(p, bytes)) {
    return widest;
  }
  return 1;
}

// The part of a register plan both layouts share: kernel and tap groups.
void PlanRegisterTaps(const Geometry& g, CudaKernel kernel, CudaPlan* plan) {
  plan->kernel = kernel;
  plan->config = ChooseRegisterConfig(g);
  plan->tap_rows = TapConfigRows(plan->config);
  plan->tap_cols = TapConfigCols(plan->config);
  plan->tap_groups_h = CeilDiv(g.filter_rows, plan->tap_rows);
  plan->tap_groups_w = CeilDiv(g.filter_cols, plan->tap_cols);
}

Status PlanRegisterNhwc(const FilterGradParams& p, const CudaDevice& device,
                        CudaPlan* plan) {
  const Geometry& g = p.geo;
  PlanRegisterTaps(g, CudaKernel::kRegisterNhwc, plan);
  plan->vector = RegisterVector(p, plan->config);
  const int64_t vectors = CeilDiv(g.out_depth(), plan->vector);
  plan->channel_blocks = CeilDiv(vectors, 32);
  plan->lanes_x = static_cast<int32_t>(CeilDiv(vectors, plan->channel_blocks));
  plan->lanes_y = kRegisterThreads / plan->lanes_x;
  plan->threads = plan->lanes_x * plan->lanes_y;
  const int64_t groups = plan->tap_groups_h * plan->tap_groups_w;
  // Enough independent (row, segment, channel vector, tap group) jobs to
  // fill the GPU: cut rows into column segments when rows alone are too few.
  const int64_t rows = g.batch * g.out_rows;
  // Two waves of two resident 256-thread blocks per SM.
  const int64_t target_threads = int64_t{device.sm_count} * 1024;
  const int64_t jobs = rows * vectors * groups;
  int64_t segments =
      std::min(CeilDiv(target_threads, jobs),
               std::max<int64_t>(1, g.out_cols / kMinSegmentCols));
  segments = std::max<int64_t>(1, segments);
  plan->segment_cols = static_cast<int32_t>(CeilDiv(g.out_cols, segments));
  plan->col_segments =
      static_cast<int32_t>(CeilDiv(g.out_cols, plan->segment_cols));
  ChooseSplits(rows * plan->col_segments, plan->lanes_y, 2,
               plan->channel_blocks * groups,
               int64_t{device.sm_count} * kRegisterBlocksPerSm,
               int64_t{device.sm_count} * 2,
               g.filter_elements() * AccumulatorSize(p.dtype), plan);
  plan->smem_bytes = int64_t{plan->threads} * plan->vector * plan->tap_cols *
                     AccumulatorSize(p.dtype);
  return Status::Ok();
}

Status PlanRegisterNchw(const FilterGradParams& p, const CudaDevice& device,
                        CudaPlan* plan) {
  const Geometry& g = p.geo;
  PlanRegisterTaps(g, CudaKernel::kRegisterNchw, plan);
  plan->vector = 1;
  // Lanes over output columns: as few passes along a row as possible, all of
  // them full. threads stays 256 (whole warps: the reduction shuffles).
  const int64_t passes = CeilDiv(g.out_cols, 32);
  plan->lanes_x = static_cast<int32_t>(CeilDiv(g.out_cols, passes));
  plan->lanes_y = kRegisterThreads / plan->lanes_x;
  plan->threads = kRegisterThreads;
  plan->channel_blocks = g.out_depth();
  ChooseSplits(g.batch * g.out_rows, plan->lanes_y, 2,
               plan->channel_blocks * plan->tap_groups_h * plan->tap_groups_w,
               int64_t{device.sm_count} * kRegisterBlocksPerSm,
               int64_t{device.sm_count} * 2,
               g.filter_elements() * AccumulatorSize(p.dtype), plan);
  plan->smem_bytes = int64_t{kRegisterThreads / 32} * plan->tap_rows *
                     plan->tap_cols * AccumulatorSize(p.dtype);
  return Status::Ok();
}

// Shared memory of the tiled kernel: input rows [x_rows][x_pitch] and
// out_backprop [kTiledBandRows][chunk_cols], reused at the end for the
// cross-warp reduction [8 warps][32 lanes][8 taps].
void TiledShape(const Geometry& g, DType dtype, CudaPlan* plan) {
  plan->chunks = static_cast<int32_t>(CeilDiv(g.out_cols, kTiledMaxChunk));
  plan->chunk_cols =
      static_cast<int32_t>(RoundUp(CeilDiv(g.out_cols, plan->chunks), 8));
  plan->bands = static_cast<int32_t>(CeilDiv(g.out_rows, kTiledBandRows));
  plan->x_rows = static_cast<int32_t>((kTiledBandRows - 1) * g.stride_rows +
                                      (kTiledTile - 1) * g.dilation_rows + 1);
  const int64_t x_cols = plan->chunk_cols + kTiledTile - 1;
  plan->x_pitch = static_cast<int32_t>(RoundUp(x_cols, 32) + 1);
  const int64_t tiles = int64_t{plan->x_rows} * plan->x_pitch +
                        int64_t{kTiledBandRows} * plan->chunk_cols;
  const int64_t reduction = int64_t{kTiledThreads} * 8;
  plan->smem_bytes = std::max(tiles, reduction) * AccumulatorSize(dtype);
}

bool TiledApplicable(const FilterGradParams& p, const CudaDevice& device,
                     std::string* why) {
  const Geometry& g = p.geo;
  if (g.stride_cols != 1 || g.dilation_cols != 1) {
    *why = "it needs column stride and column dilation 1";
    return false;
  }
  CudaPlan shape;
  TiledShape(g, p.dtype, &shape);
  if (shape.smem_bytes > device.shared_memory_per_block) {
    *why = "its tiles need " + std::to_string(shape.smem_bytes) +
           " bytes of shared memory, more than the device's " +
           std::to_string(device.shared_memory_per_block);
    return false;
  }
  return true;
}

// The tiled kernel pays off when the filter is large and fills most of its
// 32x32 tiles; smaller or ragged filters go to the register kernels.
bool PreferTiled(const Geometry& g) {
  if (g.filter_rows < 16 || g.filter_cols < 16) return false;
  const int64_t padded =
      RoundUp(g.filter_rows, kTiledTile) * RoundUp(g.filter_cols, kTiledTile);
  return 10 * g.filter_rows * g.filter_cols >= 6 * padded;
}

Status PlanTiled(const FilterGradParams& p, const CudaDevice& device,
                 CudaPlan* plan) {
  const Geometry& g = p.geo;
  plan->kernel = CudaKernel::kTiled;
  plan->config = TapConfig::kTile32;
  plan->tap_rows = kTiledTile;
  plan->tap_cols = kTiledTile;
  plan->threads = kTiledThreads;
  TiledShape(g, p.dtype, plan);
  plan->channel_blocks = g.out_depth();
  plan->tap_groups_h = CeilDiv(g.filter_rows, kTiledTile);
  plan->tap_groups_w = CeilDiv(g.filter_cols, kTiledTile);
  const int64_t units = g.batch * plan->chunks * int64_t{plan->bands};
  if (units > kInt32Max)
    return CudaTooLarge("tiled work units", units, kInt32Max);
  // About two resident blocks per SM, three waves; at least two bands per
  // split where possible (the ring of input rows then saves loads).
  ChooseSplits(units, 1, 2,
               plan->channel_blocks * plan->tap_groups_h * plan->tap_groups_w,
               int64_t{device.sm_count} * 6, int64_t{device.sm_count} * 2,
               g.filter_elements() * AccumulatorSize(p.dtype), plan);
  return Status::Ok();
}

}  // namespace

Status PlanCuda(const FilterGradParams& params, const CudaDevice& device,
                CudaPath path, CudaPlan* plan) {
  *plan = CudaPlan();
  const Geometry& g = params.geo;
  if (path != CudaPath::kAuto && path != CudaPath::kRegister &&
      path != CudaPath::kTiled) {
    return Status::InvalidArgument("unknown CUDA path " +
                                   std::to_string(static_cast<int>(path)));
  }
  if (device.sm_count < 1 || device.shared_memory_per_block < 16 * 1024) {
    return Status::InvalidArgument(
        "CudaDevice needs sm_count >= 1 and shared_memory_per_block >= 16384, "
        "got " +
        std::to_string(device.sm_count) + " and " +
        std::to_string(device.shared_memory_per_block));
  }
  if (g.filter_elements() == 0) return Status::Ok();  // kNothing
  if (NothingToSum(g)) {
    plan->kernel = CudaKernel::kZero;
    return Status::Ok();
  }
  DWOP_RETURN_IF_ERROR(CheckRanges(g));
  std::string why;
  const bool tiled_ok = TiledApplicable(params, device, &why);
  if (path == CudaPath::kTiled && !tiled_ok) {
    return Status::InvalidArgument(
        "the tiled CUDA kernel cannot run this "
        "problem: " +
        why);
  }
  if (path == CudaPath::kTiled ||
      (path == CudaPath::kAuto && tiled_ok && PreferTiled(g))) {
    DWOP_RETURN_IF_ERROR(PlanTiled(params, device, plan));
  } else if (g.layout == Layout::kNHWC) {
    DWOP_RETURN_IF_ERROR(PlanRegisterNhwc(params, device, plan));
  } else {
    DWOP_RETURN_IF_ERROR(PlanRegisterNchw(params, device, plan));
  }
  if (plan->smem_bytes > device.shared_memory_per_block) {
    return Status::Internal("CUDA plan needs " +
                            std::to_string(plan->smem_bytes) +
                            " bytes of shared memory per block");
  }
  if (plan->work_total + plan->work_per_split > kInt32Max) {
    return CudaTooLarge("the work items", plan->work_total, kInt32Max / 2);
  }
  plan->blocks = plan->channel_blocks * plan->tap_groups_h *
                 plan->tap_groups_w * plan->splits;
  if (plan->blocks > kInt32Max) {
    return CudaTooLarge("the grid size", plan->blocks, kInt32Max);
  }
  if (plan->splits > 1) {
    plan->workspace_bytes =
        plan->splits * g.filter_elements() * AccumulatorSize(params.dtype);
    plan->finalize_blocks =
        std::min(CeilDiv(g.filter_elements(), kFinalizeThreads),
                 int64_t{device.sm_count} * 16);
  }
  return Status::Ok();
}

Status CudaTooLarge(const std::string& what, int64_t value, int64_t limit) {
  return Status::InvalidArgument("the CUDA kernels index " + what +
                                 " with 32-bit integers, but it is " +
                                 std::to_string(value) + " (at most " +
                                 std::to_string(limit) + " is supported)");
}

Status CheckCudaSpans(const Geometry& g, int64_t extra_out_rows,
                      int64_t extra_out_cols, int64_t extra_taps_rows,
                      int64_t extra_taps_cols) {
  const struct {
    const char* name;
    int64_t value;
  } dims[] = {
      {"batch", g.batch},
      {"in_rows", g.in_rows},
      {"in_cols", g.in_cols},
      {"in_depth", g.in_depth},
      {"depth_multiplier", g.depth_multiplier},
      {"out_depth", g.out_depth()},
      {"filter_rows", g.filter_rows},
      {"filter_cols", g.filter_cols},
      {"out_rows", g.out_rows},
      {"out_cols", g.out_cols},
      {"stride_rows", g.stride_rows},
      {"stride_cols", g.stride_cols},
      {"dilation_rows", g.dilation_rows},
      {"dilation_cols", g.dilation_cols},
      {"pad_top", g.pad_top},
      {"pad_left", g.pad_left},
  };
  for (const auto& d : dims) {
    if (d.value > kDimLimit) return CudaTooLarge(d.name, d.value, kDimLimit);
  }
  const int64_t row_extent =
      (g.out_rows + extra_out_rows) * g.stride_rows +
      (g.filter_rows + extra_taps_rows) * g.dilation_rows + g.pad_top +
      g.in_rows;
  const int64_t col_extent =
      (g.out_cols + extra_out_cols) * g.stride_cols +
      (g.filter_cols + extra_taps_cols) * g.dilation_cols + g.pad_left +
      g.in_cols;
  if (row_extent > kInt32Max) {
    return CudaTooLarge("the span of input rows", row_extent, kInt32Max);
  }
  if (col_extent > kInt32Max) {
    return CudaTooLarge("the span of input columns", col_extent, kInt32Max);
  }
  return Status::Ok();
}

}  // namespace dwop
