// The plan of the CPU forward and input gradient (conv.h), shared by the
// portable planner and driver (conv.cc) and the per-ISA kernels (conv.inc).
//
// Both ops are one gather: every element of the tensor written ("dst": the
// output of the forward, in_backprop of the input gradient) is a sum over a
// set of taps of the tensor read ("src": input, out_backprop) times the
// filter. The input gradient is the forward of out_backprop with the filter
// flipped, which for strides > 1 splits into phases (residues of the input
// column modulo the stride) each with its own arithmetic progression of
// filter columns, run from the last down so that src is read left to right
// as in the forward (tap_src_step > 0); rows are listed tap by tap. So one
// kernel runs both:
//
//   dst[n, r, col, k] = sum over RowTap (slot, slice) of dst row r,
//                       sum over t in [tap_lo[col], tap_hi[col]) of
//     staged[slot][col's src column + t * tap_src_step][k]
//     * filter[slice][filter_begin + t * filter_step][k]
//
// Plain data and integer tables only: the ISA units include this header.
#ifndef DWOP_CC_KERNELS_CPU_CONV_PLAN_H_
#define DWOP_CC_KERNELS_CPU_CONV_PLAN_H_

#include <cstdint>

#include "cc/kernels/common/params.h"

namespace dwop {
namespace cpu {

// One row tap of a dst row: the staged src row (its slot in the band's
// staging, see ConvPlan::band_first) and the filter slice it meets.
struct RowTap {
  int64_t slot;
  int64_t slice;
};

// The dst columns dst_begin + q * dst_step, q in [0, count), and their taps:
// tap t of column q reads src column src_begin + q * src_step +
// t * tap_src_step with filter column filter_begin + t * filter_step, for t
// in [tap_lo[col], tap_hi[col]) (ConvPlan): the taps whose src columns lie
// inside the tensor (empty: the column is zero). The ranges are monotone in
// q. src_step, tap_src_step > 0; filter_step < 0 in the input gradient.
struct ColPhase {
  int64_t dst_begin, dst_step, count;
  int64_t src_begin, src_step, tap_src_step;
  int64_t filter_begin, filter_step;
};

// A run of dst columns of one phase computed together: `width` columns
// q .. q + width - 1 sharing the taps [lo, hi) in a register block (width >
// 1; each column's other taps added on), or one column (width 1) with its
// own taps [lo, hi). A diagonal block (a filter about as wide as the map)
// instead has columns whose taps shift by one from column to column, all
// reading the same src pixels: column b's taps are [lo - b, hi - b). A
// ramp block (the edges of a map wider than the filter, or not much
// narrower) has columns whose taps reach beyond the common [lo, hi), one
// tap more per column up to low_taps below lo and high_taps from hi: column
// b has min(b, low_taps) taps below lo and min(width - 1 - b, high_taps)
// from hi. Both need taps that move as far along src as the columns
// (tap_src_step == src_step). Depends on the geometry only: the planner
// lists them once for every row.
struct ColGroup {
  int64_t phase, q, width, lo, hi;
  bool diagonal = false;
  int64_t low_taps = 0, high_taps = 0;  // a ramp block where either > 0
  bool ramp() const { return low_taps > 0 || high_taps > 0; }
};

struct ConvPlan {
  bool input_grad = false;  // else forward
  DType dtype = DType::kFloat;
  Layout layout = Layout::kNHWC;
  int64_t batch = 0;
  int64_t multiplier = 1;
  // The tensor read and the one written; depth = channels of that tensor.
  int64_t src_rows = 0, src_cols = 0, src_depth = 0;
  int64_t dst_rows = 0, dst_cols = 0, dst_depth = 0;
  int64_t filter_cols = 0;  // KW

  // Channel blocks of dst (lanes each, the last one maybe short), grouped
  // group_blocks at a time; dst rows in bands of band_rows. A chunk is one
  // (image, band, group): chunk = (n * num_bands + band) * num_groups + group.
  int64_t lanes = 0;
  int64_t num_blocks = 0;
  int64_t group_blocks = 0, num_groups = 0;
  int64_t band_rows = 0, num_bands = 0;

  // Rows: dst row r's taps are row_taps[row_tap_first[r] ..
  // row_tap_first[r + 1]); band b stages the src rows
  // band_src_rows[band_first[b] .. band_first[b + 1]) (increasing) into
  // slots 0, 1, ... (times `multiplier` slots each for the input gradient:
  // slot = row slot * multiplier + m holds out_backprop channels c*M + m).
  const RowTap* row_taps = nullptr;
  const int64_t* row_tap_first = nullptr;  // [dst_rows + 1]
  const int64_t* band_src_rows = nullptr;
  const int64_t* band_first = nullptr;  // [num_bands + 1]
  int64_t max_band_slots = 0;           // slots of the largest band
  int64_t max_row_taps = 0;             // taps of the dst row with most
  // The kernels read src in place (NHWC without a multiplier, or as pairs,
  // below; half and bfloat16 widened as they are loaded), all but a last
  // channel block short of lanes, which alone is staged (one block per
  // slot); slot = row index in the band.
  bool direct = false;
  // The forward of a depth multiplier of 2, float32, read in place too
  // (direct): a block's L lanes hold its L/2 src channels twice over, lane
  // j channel j % (L/2) with multiplier j / (L/2), one broadcast load per
  // src vector (SimdBase::LoadPairs); the filter is packed in that lane
  // order and the sums go back to channel order as they are stored
  // (Unpair), once per output vector rather than once per tap.
  bool pairs = false;
  // Whole channel blocks of an accumulator-typed NHWC dst go out with
  // non-temporal stores (the traits' Stream): on problems far larger than
  // the caches, where the output would not stay in them anyway, that saves
  // reading every dst line in before writing it (kStreamBytes in conv.cc).
  // Set by the planner, cleared by the driver for a dst not 64-byte
  // aligned.
  bool stream = false;

  // Columns.
  const ColPhase* phases = nullptr;
  int64_t num_phases = 0;
  const int64_t* tap_lo = nullptr;  // [dst_cols]
  const int64_t* tap_hi = nullptr;  // [dst_cols]
  // The register blocks of every row (widths 8 or 4), then the
  // single columns.
  const ColGroup* col_groups = nullptr;
  int64_t num_blocks_groups = 0;  // col_groups[0 .. num_blocks_groups)
  int64_t num_col_groups = 0;

  // The filter, packed into the workspace as accumulator-typed vectors,
  // one channel block after another (so that a block's taps are contiguous
  // whatever the channel count): [num_blocks][num_slices][filter_cols]
  // [lanes], zero lanes past dst_depth; slice = kh (forward) or m * KH + kh
  // (input gradient); filter_block_stride = num_slices * filter_cols * lanes.
  int64_t num_slices = 0;
  int64_t filter_block_stride = 0;
  int64_t workspace_bytes = 0;

  // Per-thread scratch (bytes, 64-byte aligned): the staged slots, the
  // staging buffer of a multiplier's expansion, the NCHW output row.
  int64_t slot_stride = 0;    // elements of one staged slot (group x src row)
  int64_t expand_elems = 0;   // elements of the expansion buffer
  int64_t out_row_elems = 0;  // elements of the NCHW output row
  int64_t scratch_bytes = 0;
  double work = 0;  // vector FMAs of the whole problem

  // Buffers.
  const void* src = nullptr;
  const void* filter = nullptr;  // packed, as described above
  void* dst = nullptr;

  int64_t num_chunks() const { return batch * num_bands * num_groups; }
};

// The entry points of each ISA unit (conv_<isa>.cc): runs one chunk with
// thread-private `scratch` of plan.scratch_bytes.
namespace avx512 {
void RunConvChunk(const ConvPlan& plan, int64_t chunk, void* scratch);
}  // namespace avx512
namespace avx2 {
void RunConvChunk(const ConvPlan& plan, int64_t chunk, void* scratch);
}  // namespace avx2
namespace generic {
void RunConvChunk(const ConvPlan& plan, int64_t chunk, void* scratch);
}  // namespace generic

}  // namespace cpu
}  // namespace dwop

#endif  // DWOP_CC_KERNELS_CPU_CONV_PLAN_H_
