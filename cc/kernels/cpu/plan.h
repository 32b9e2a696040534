// Internal to the CPU filter gradient: the plan that the planner (plan.cc)
// computes once per call and the per-ISA translation units
// (filter_grad_avx512.cc, filter_grad_avx2.cc, filter_grad_generic.cc)
// execute.
//
// The plan is plain integers and pointers on purpose: the ISA units are
// compiled with different -m flags, so nothing they share may contain inline
// code that the linker could pick from the wrong unit (see
// filter_grad_sweeps.inc).
//
// Work decomposition (all of it a function of the geometry, the dtype and the
// ISA level, never of the thread count):
//   * out channels (C*M) are cut into blocks of `lanes` (one vector), and the
//     blocks into `num_groups` groups of `group_blocks`;
//   * the reduction range, the rows r = n*out_rows + oh, is cut into
//     `num_pieces` contiguous pieces;
//   * chunk = (piece, group) is the unit of parallel work. It accumulates its
//     rows into its own slice of partial filter gradient `partials[piece]`,
//     and the driver sums the pieces in index order afterwards.
// Inside a chunk, rows are processed in bands of `band_rows` output rows of a
// single image: the input rows the band touches and its out_backprop rows are
// staged into thread-local scratch as channel-blocked accumulator-typed
// vectors (zero margins left and right), and register-blocked micro-kernels
// sweep the staged band once per tap block. Common layers skip the staging
// and sweep the tensors in place (Plan::in_place).
#ifndef DWOP_CC_KERNELS_CPU_PLAN_H_
#define DWOP_CC_KERNELS_CPU_PLAN_H_

#include <cstdint>

#include "cc/kernels/common/params.h"

namespace dwop {
namespace cpu {

enum class Isa : int32_t { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// Storage of the 16-bit types as the ISA units see them: bit patterns only,
// so that those units never call float16.h's inline converters.
struct HalfBits {
  uint16_t bits;
};
struct Bfloat16Bits {
  uint16_t bits;
};

// Largest tap block (filter rows x filter columns of accumulators kept in
// registers) that any ISA unit instantiates.
constexpr int kMaxTapRows = 8;
constexpr int kMaxTapCols = 8;

// Lanes of the widest accumulator vector (AVX-512 float32): bounds every
// per-lane table of the ISA units, and rounds a row of the partial gradients.
constexpr int kMaxLanes = 16;
// Alignment of the workspace and of every thread's scratch (cpu.h,
// ThreadScratch): a cache line, a whole number of the widest vectors.
constexpr int64_t kScratchAlign = 64;
static_assert(kScratchAlign % (kMaxLanes * sizeof(float)) == 0,
              "the scratch must start on a vector boundary");

// Vector register widths of the levels, in bytes.
constexpr int32_t kGenericVectorBytes = 16;  // SSE2 (or scalar code)
constexpr int32_t kAvx2VectorBytes = 32;
constexpr int32_t kAvx512VectorBytes = 64;

struct IsaInfo {
  int32_t lanes_float;     // accumulator lanes per vector for float32
  int32_t lanes_double;    // ... for float64
  int32_t max_acc;         // vector accumulators a micro-kernel may hold
  int32_t max_acc_shared;  // ... when it also keeps 4 out_backprop vectors
  int32_t registers;       // vector registers of the level
};

// One output-pixel step of a micro-kernel holds max_acc accumulators, one
// out_backprop vector and takes the input operand from memory, so max_acc is
// the register file minus what the compiler needs around them.
constexpr IsaInfo kGenericInfo{kGenericVectorBytes / 4, kGenericVectorBytes / 8,
                               12, 10, 16};  // 16 xmm (or none: scalar)
constexpr IsaInfo kAvx2Info{kAvx2VectorBytes / 4, kAvx2VectorBytes / 8, 13, 10,
                            16};  // 16 ymm
constexpr IsaInfo kAvx512Info{kAvx512VectorBytes / 4, kAvx512VectorBytes / 8,
                              28, 26, 32};  // 32 zmm
static_assert(kAvx512Info.lanes_float == kMaxLanes, "kMaxLanes is AVX-512's");
static_assert(kAvx512VectorBytes <= kScratchAlign,
              "vectors of the scratch start on vector boundaries");

// One contiguous run of filter rows or columns handled together.
struct Range {
  int64_t begin = 0;
  int64_t end = 0;
};

// Output positions [begin, end) along one dimension at which exactly the taps
// [tap_begin, tap_end) of a tap block read inside the image (in-place sweeps).
struct TapRun {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t tap_begin = 0;
  int64_t tap_end = 0;
};

// Sizes of the records the ISA units keep in a thread's scratch
// (filter_grad_staging.inc: BlockMap, filter_grad_drivers.inc: PrefetchRow;
// both static_assert them), for the planner's layout. Every table of the
// scratch (these records, int64 tables, TapRuns) is aligned to kTableAlign.
constexpr int64_t kBlockMapBytes =
    4 * sizeof(int64_t) + kMaxLanes * sizeof(int32_t);
constexpr int64_t kPrefetchRowBytes = 2 * sizeof(int64_t);
constexpr int64_t kTableAlign = alignof(int64_t);
static_assert(alignof(TapRun) == kTableAlign, "TapRun tables are int64 tables");
static_assert(kScratchAlign % kTableAlign == 0, "");

// Byte offsets of the parts of one thread's scratch, computed once by the
// planner (plan.cc: LayOutScratch), which sizes the scratch with `bytes`, and
// used by the ISA units to carve it. Vectors start on vector boundaries,
// tables on kTableAlign.
struct ScratchLayout {
  // Both kinds of chunk: the band's element offset of every input row its
  // taps read (band_rows x filter rows of one row group).
  int64_t row_off = 0;
  // Staged chunks: the group's staged input and out_backprop blocks, the
  // band's input rows and their slots (PlanBandRows), one BlockMap per
  // channel block of the group.
  int64_t x_stage = 0, y_stage = 0, band_rows = 0, slot = 0, block_maps = 0;
  // In-place chunks: the input rows of the current and of the next band and
  // the latter's slots (PlanBandRows), the rows to prefetch (PrefetchRow),
  // the band's row runs per row block and their counts, the short channel
  // block's accumulators (taps x lanes).
  int64_t cur_rows = 0, next_rows = 0, next_slot = 0, prefetch_rows = 0;
  int64_t row_runs = 0, run_counts = 0, tail_acc = 0;
  int64_t bytes = 0;  // the whole scratch (ThreadScratch aligns it)
};

struct Plan {
  // --- The problem (a copy of Geometry, see params.h).
  DType dtype = DType::kFloat;
  Layout layout = Layout::kNHWC;
  int64_t batch = 0, in_rows = 0, in_cols = 0, in_depth = 0, multiplier = 0;
  int64_t filter_rows = 0, filter_cols = 0, out_rows = 0, out_cols = 0;
  int64_t stride_rows = 1, stride_cols = 1;
  int64_t dilation_rows = 1, dilation_cols = 1;
  int64_t pad_top = 0, pad_left = 0;
  // stride_cols and dilation_cols as multipliers of a sweep's address steps,
  // clamped to in_cols + kMaxMargin (plan.cc). A sweep only steps from one
  // output column (tap) to the next when both read inside the image or its
  // staged zero margins, which takes a smaller stride (dilation); beyond it
  // every sweep is one column (tap) wide, and the clamp keeps the unused step
  // products (stride * lanes, stride * channels) from overflowing.
  int64_t step_stride_cols = 1, step_dilation_cols = 1;
  int64_t out_depth = 0;  // in_depth * multiplier
  int64_t partial_depth =
      0;  // out_depth rounded up to kMaxLanes: partials' row

  // --- Valid output ranges of each filter row / column: tap kh reads inside
  // the image exactly for oh in [row_valid[kh].begin, row_valid[kh].end).
  const Range* row_valid = nullptr;  // [filter_rows]
  const Range* col_valid = nullptr;  // [filter_cols]

  // --- Tap blocks: filter rows split into row_blocks (each <= kMaxTapRows),
  // columns into col_blocks (each <= kMaxTapCols); a micro-kernel call
  // handles one row block x one column block.
  const Range* row_blocks = nullptr;
  int64_t num_row_blocks = 0;
  const Range* col_blocks = nullptr;
  int64_t num_col_blocks = 0;
  // Consecutive column blocks staged together (their input columns span a
  // bounded width, even with huge dilations), and likewise row blocks.
  int64_t col_blocks_per_group = 1;
  int64_t row_blocks_per_group = 1;
  // Zero columns staged on each side of the valid input columns: enough for
  // the union of the valid output ranges of one column block.
  int64_t margin = 0;

  // --- In-place sweeps. When `in_place` (NHWC float32/float64 without a
  // multiplier, at least one vector of channels) nothing is staged: the
  // micro-kernels read input and out_backprop where they lie, band by band,
  // every channel block of the group while the band's rows are in cache, so
  // that streaming the tensors from memory overlaps the arithmetic. Edges
  // need no zero margins: each tap block's output columns are cut into runs
  // of constant valid taps (col_runs[col_run_first[cb] ..
  // col_run_first[cb + 1]) for column block cb), rows likewise per band, and
  // each run sweeps only its valid sub-block.
  bool in_place = false;
  const TapRun* col_runs = nullptr;
  const int64_t* col_run_first = nullptr;  // [num_col_blocks + 1]

  // --- Channel blocks and chunks.
  int64_t lanes = 0;
  int64_t num_blocks = 0;
  double work = 0;  // vector FMAs of the whole problem, for chunking
  int64_t group_blocks = 0;
  int64_t num_groups = 0;
  int64_t num_pieces = 0;
  int64_t band_rows = 0;     // output rows staged at once (within one image)
  int64_t segment_cols = 0;  // output columns staged at once

  // --- Staging scratch layout, in accumulator elements unless noted.
  int64_t x_row_stride = 0;    // one staged input row of one channel block
  int64_t x_block_stride = 0;  // x_row_stride * (max staged rows + zero row)
  int64_t x_zero_slot = 0;     // the zero row: after the max staged rows
  int64_t y_row_stride = 0;    // segment_cols * lanes
  int64_t y_block_stride = 0;  // band_rows * y_row_stride
  int64_t max_band_taps = 0;   // band_rows * filter rows of one row group
  ScratchLayout scratch;       // per thread, kScratchAlign-byte aligned

  // --- Buffers.
  const void* input = nullptr;
  const void* out_backprop = nullptr;
  void* partials =
      nullptr;  // [num_pieces][filter_rows*filter_cols][partial_depth]

  int64_t num_chunks() const { return num_groups * num_pieces; }
  int64_t taps() const { return filter_rows * filter_cols; }
};

// Which input rows one band stages. For output rows [oh_begin, oh_end) and
// filter rows [kh_begin, kh_end) fills `rows` with the distinct input rows
// inside the image that those taps read, increasing, and returns their count;
// slot[(oh - oh_begin) * (kh_end - kh_begin) + kh - kh_begin] is the index in
// `rows` of the row tap (oh, kh) reads, or -1 where it reads padding. Both
// arrays hold (oh_end - oh_begin) * (kh_end - kh_begin) entries. Defined in
// plan.cc; the ISA units call it (integer code only).
int64_t PlanBandRows(const Plan& plan, int64_t oh_begin, int64_t oh_end,
                     int64_t kh_begin, int64_t kh_end, int64_t* rows,
                     int64_t* slot);

// Cuts output positions [begin, end) into the runs (TapRun) at which the
// same taps of the block `taps` read inside the image, tap k doing so at
// valid[k]; positions where none does are left out. Writes at most
// end - begin runs and returns their count. Defined in plan.cc (integer code
// only), for the planner's column runs and the ISA units' row runs.
int64_t TapRuns(const Range* valid, Range taps, int64_t begin, int64_t end,
                TapRun* runs);

// The entry point of each ISA unit: runs chunk `chunk` of `plan` with
// `scratch` (plan.scratch.bytes, kScratchAlign-byte aligned, thread-private).
namespace avx512 {
void RunChunk(const Plan& plan, int64_t chunk, void* scratch);
}  // namespace avx512
namespace avx2 {
void RunChunk(const Plan& plan, int64_t chunk, void* scratch);
}  // namespace avx2
namespace generic {
void RunChunk(const Plan& plan, int64_t chunk, void* scratch);
}  // namespace generic

}  // namespace cpu
}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CPU_PLAN_H_
