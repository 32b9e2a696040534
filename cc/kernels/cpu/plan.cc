// The filter-gradient planner of the CPU backend: turns a geometry, a dtype
// and an ISA level (and the DWOP_CPU_PLAN testing knob) into the Plan of
// plan.h: tap blocks, bands, channel groups, reduction pieces and the layout
// of each thread's scratch. Also the integer helpers that the ISA units
// (PlanBandRows, TapRuns) and the forward planner (ValidRanges,
// SaturatingInt64, driver.h) share. Compiled with the baseline flags.
#include "cc/kernels/cpu/plan.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/common/geometry.h"
#include "cc/kernels/cpu/driver.h"
#include "cc/kernels/cpu/isa.h"

namespace dwop {
namespace cpu {
namespace {

// Staged input + out_backprop per thread: half of the 2 MB L2 of the target
// machine, so a band stays cache-resident while every tap block sweeps it.
constexpr int64_t kStageBudget = int64_t{1} << 20;
// Partial filter gradients of all pieces together (the workspace), unless a
// single one is larger.
constexpr int64_t kPartialBudget = int64_t{4} << 20;
// Chunks a large problem is cut into: enough for a balanced split over a
// handful of threads, few enough that per-chunk setup and the final
// reduction stay negligible.
constexpr int64_t kTargetChunks = 32;
// Vector FMAs below which splitting further is not worth a chunk (~20 us).
constexpr int64_t kMinChunkWork = int64_t{1} << 16;
// Zero columns a staged row may carry per side; wider tap blocks are not
// planned (huge column dilations use one-column blocks).
constexpr int64_t kMaxMargin = 64;
// Output rows per band: enough that the band's input rows, which overlap
// the next band's by (filter_rows - 1) * dilation_rows, are staged at most
// ~1.5 times over, and at least this many.
constexpr int64_t kMinBandRows = 16;
// Output pixels an in-place band aims at (per channel block and tap block):
// enough to amortise a sweep's accumulator loads and stores and its edges.
constexpr int64_t kInPlacePixels = 64;
// Largest filter swept in place (its short channel block keeps taps x lanes
// accumulators in the thread's scratch).
constexpr int64_t kMaxInPlaceTaps = 1024;
// UseInPlace's automatic choice: filters of at most 5x5, rows of at least 16
// output columns and 7 times as wide as their edge (the columns where some
// tap reads padding, each a sweep call of its own), input + out_backprop of
// at most 64 MB.
constexpr int64_t kMaxAutoInPlaceTaps = 25;
constexpr int64_t kMinAutoInPlaceCols = 16;
constexpr int64_t kMinAutoInPlaceEdgeRatio = 7;
constexpr double kMaxAutoInPlaceBytes = 64.0 * (1 << 20);

// a * b for a, b >= 0, saturated at INT64_MAX: for a product across
// tensors (out_rows * stride_rows) that only bounds another size.
int64_t SaturatedMul(int64_t a, int64_t b) {
  int64_t product;
  return __builtin_mul_overflow(a, b, &product) ? INT64_MAX : product;
}

// DWOP_CPU_PLAN="band=2,pieces=3,..." overrides the planner's choices (0 =
// automatic). A testing knob: it lets small tensors exercise the tiling edges
// (several pieces, groups, segments, one-column tap blocks, ...) that
// otherwise only large tensors reach. It changes rounding, never the math.
struct Overrides {
  int64_t group = 0;      // channel blocks per chunk
  int64_t pieces = 0;     // reduction pieces
  int64_t band = 0;       // output rows per band
  int64_t segment = 0;    // output columns per segment
  int64_t tap_rows = 0;   // R of the tap blocks
  int64_t tap_cols = 0;   // T of the tap blocks
  int64_t row_group = 0;  // row blocks staged together
  int64_t col_group = 0;  // column blocks staged together
  int64_t in_place = -1;  // 0: stage, 1: in place where possible, -1: auto
};

Overrides ReadOverrides() {
  Overrides o;
  const char* env = std::getenv("DWOP_CPU_PLAN");
  if (env == nullptr) return o;
  std::string text(env);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    pos = end + 1;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = item.substr(0, eq);
    const int64_t value =
        std::max<int64_t>(0, std::atoll(item.c_str() + eq + 1));
    static const struct {
      const char* key;
      int64_t Overrides::* field;
    } kFields[] = {{"group", &Overrides::group},
                   {"pieces", &Overrides::pieces},
                   {"band", &Overrides::band},
                   {"segment", &Overrides::segment},
                   {"rows", &Overrides::tap_rows},
                   {"cols", &Overrides::tap_cols},
                   {"rowgroup", &Overrides::row_group},
                   {"colgroup", &Overrides::col_group}};
    bool known = key == "inplace";
    if (known) o.in_place = value != 0 ? 1 : 0;
    for (const auto& f : kFields) {
      if (key == f.key) {
        o.*f.field = value;
        known = true;
      }
    }
    static std::atomic<bool> warned{false};
    if (!known && !warned.exchange(true)) {
      std::fprintf(stderr, "dwop: ignoring unknown DWOP_CPU_PLAN key '%s'\n",
                   key.c_str());
    }
  }
  return o;
}

// `size` taps cut into ceil(size / block) runs whose lengths differ by at
// most one (so only two micro-kernel shapes run per dimension).
std::vector<Range> Split(int64_t size, int64_t block) {
  const int64_t count = CeilDiv(size, block);
  std::vector<Range> runs(count);
  for (int64_t i = 0; i < count; ++i) {
    runs[i].begin = i * size / count;
    runs[i].end = (i + 1) * size / count;
  }
  return runs;
}

int64_t HullSize(const std::vector<Range>& valid, Range taps) {
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (int64_t k = taps.begin; k < taps.end; ++k) {
    if (valid[k].begin >= valid[k].end) continue;
    lo = std::min(lo, valid[k].begin);
    hi = std::max(hi, valid[k].end);
  }
  return hi > lo ? hi - lo : 0;
}

// Estimated cycles per image and channel block of tap blocks R x T: every
// output pixel of a block's valid hull costs max(loads, FMAs) / 2 (two of
// each per cycle; at least 4 for the FMA latency when few accumulators),
// each row of it a pointer setup, and staged zero margins cost a little.
// With unit steps inputs are shared across 4 columns (kUnitStep sweeps).
double BlockingCost(const std::vector<Range>& row_valid,
                    const std::vector<Range>& col_valid,
                    const std::vector<Range>& row_blocks,
                    const std::vector<Range>& col_blocks, int64_t margin,
                    int64_t out_rows, bool unit_step) {
  std::vector<int64_t> col_hull(col_blocks.size());
  for (size_t j = 0; j < col_blocks.size(); ++j) {
    col_hull[j] = HullSize(col_valid, col_blocks[j]);
  }
  double cost = 0;
  for (const Range& rb : row_blocks) {
    const double rows = static_cast<double>(HullSize(row_valid, rb));
    const int64_t r = rb.end - rb.begin;
    for (size_t j = 0; j < col_blocks.size(); ++j) {
      const int64_t t = col_blocks[j].end - col_blocks[j].begin;
      const double loads = unit_step
                               ? 1.0 + static_cast<double>(r * (t + 3)) / 4.0
                               : static_cast<double>(r * t + 1);
      const double per_pixel =
          std::max(0.5 * std::max(loads, static_cast<double>(r * t)), 4.0);
      cost += rows * (static_cast<double>(col_hull[j]) * per_pixel +
                      static_cast<double>(r) + 6.0);
    }
  }
  return cost + 4.0 * static_cast<double>(margin * out_rows);
}

// Plan::col_runs: each column block's output columns cut into runs of
// constant valid taps (TapRuns).
void MakeColumnRuns(PlanStorage* s) {
  const Plan& p = s->plan;
  s->col_runs.resize(s->col_blocks.size() * p.out_cols);
  s->col_run_first.assign(1, 0);
  for (const Range& kc : s->col_blocks) {
    const int64_t first = s->col_run_first.back();
    s->col_run_first.push_back(first + TapRuns(s->col_valid.data(), kc, 0,
                                               p.out_cols,
                                               s->col_runs.data() + first));
  }
  s->col_runs.resize(s->col_run_first.back());
  s->plan.col_runs = s->col_runs.data();
  s->plan.col_run_first = s->col_run_first.data();
}

// Bytes of one in-place band's input and out_backprop rows (of the group's
// channels), which should stay in cache while every channel block sweeps
// them and until the next band reuses the overlapping input rows.
int64_t InPlaceBandBytes(const Plan& p, int64_t elem) {
  const int64_t rows =
      std::min(p.in_rows, (p.band_rows - 1) * p.stride_rows +
                              (p.filter_rows - 1) * p.dilation_rows + 1);
  return (rows * p.in_cols + p.band_rows * p.out_cols) * p.group_blocks *
         p.lanes * elem;
}

// Places `bytes` at the next multiple of `align` after *end; returns the
// offset and moves *end past it.
int64_t Place(int64_t* end, int64_t bytes, int64_t align) {
  const int64_t at = CeilDiv(*end, align) * align;
  *end = at + bytes;
  return at;
}

// p.scratch: the one layout of a thread's scratch, for the plan's current
// blocking and strides (the ISA units carve it with these offsets).
void LayOutScratch(Plan& p, int64_t elem) {
  constexpr int64_t kIndex = sizeof(int64_t);
  const int64_t vector = p.lanes * elem;
  ScratchLayout& s = p.scratch;
  s = ScratchLayout();
  int64_t end = 0;
  if (p.in_place) {
    const int64_t band_taps = p.band_rows * p.filter_rows;
    s.row_off = Place(&end, band_taps * kIndex, kTableAlign);
    s.cur_rows = Place(&end, band_taps * kIndex, kTableAlign);
    s.next_rows = Place(&end, band_taps * kIndex, kTableAlign);
    s.next_slot = Place(&end, band_taps * kIndex, kTableAlign);
    s.prefetch_rows =
        Place(&end, (band_taps + p.band_rows) * kPrefetchRowBytes, kTableAlign);
    s.row_runs = Place(&end, p.band_rows * p.num_row_blocks * sizeof(TapRun),
                       kTableAlign);
    s.run_counts = Place(&end, p.num_row_blocks * kIndex, kTableAlign);
    s.tail_acc = Place(&end, p.taps() * vector, elem);
  } else {
    s.x_stage = Place(&end, p.group_blocks * p.x_block_stride * elem, vector);
    s.y_stage = Place(&end, p.group_blocks * p.y_block_stride * elem, vector);
    s.band_rows = Place(&end, p.max_band_taps * kIndex, kTableAlign);
    s.slot = Place(&end, p.max_band_taps * kIndex, kTableAlign);
    s.row_off = Place(&end, p.max_band_taps * kIndex, kTableAlign);
    s.block_maps = Place(&end, p.group_blocks * kBlockMapBytes, kTableAlign);
  }
  s.bytes = end;
}

// The staging strides (staged chunks) and the scratch layout of one thread
// for the plan's current blocking.
void SizeScratch(Plan& p, int64_t elem) {
  if (p.in_place) {
    LayOutScratch(p, elem);
    return;
  }
  int64_t row_span = 0, col_span = 0;
  for (int64_t i = 0; i < p.num_row_blocks; i += p.row_blocks_per_group) {
    const int64_t last = std::min(p.num_row_blocks, i + p.row_blocks_per_group);
    row_span =
        std::max(row_span, p.row_blocks[last - 1].end - p.row_blocks[i].begin);
  }
  for (int64_t i = 0; i < p.num_col_blocks; i += p.col_blocks_per_group) {
    const int64_t last = std::min(p.num_col_blocks, i + p.col_blocks_per_group);
    col_span =
        std::max(col_span, p.col_blocks[last - 1].end - p.col_blocks[i].begin);
  }
  const int64_t band = p.band_rows;
  const int64_t rows = std::min(
      {band * row_span,
       (band - 1) * p.stride_rows + (row_span - 1) * p.dilation_rows + 1,
       p.in_rows});
  const int64_t cols = std::min((p.segment_cols - 1) * p.stride_cols +
                                    (col_span - 1) * p.dilation_cols + 1,
                                p.in_cols) +
                       2 * p.margin;
  p.x_row_stride = cols * p.lanes;
  p.x_block_stride = p.x_row_stride * (rows + 1);
  p.x_zero_slot = rows;
  p.y_row_stride = p.segment_cols * p.lanes;
  p.y_block_stride = band * p.y_row_stride;
  p.max_band_taps = band * row_span;
  LayOutScratch(p, elem);
}

int64_t StageBytes(Plan& p, int64_t elem) {
  SizeScratch(p, elem);
  return p.scratch.bytes;
}

// Whether to sweep in place (Plan::in_place). Possible when the tensors hold
// accumulator-typed NHWC pixels whose channels are the out channels (nothing
// to widen, transpose or spread), at least one vector of them (a short last
// block reads the last full vector) and a filter whose short-block
// accumulators (taps x lanes) fit the scratch. Chosen, as measured on the
// benchmark's layers (python/bench.py with inplace=0 and 1), for small
// filters on rows wide enough that the edge runs are a small part of each
// sweep, and tensors small enough to stay in the last-level cache between
// calls: 10-25% faster there. From DRAM the staging copy's sequential
// stream was faster (by 10-40%, software prefetching or not), and on large
// filters or narrow rows the zero margins beat the edge runs. DWOP_CPU_PLAN's
// inplace=0|1 overrides the choice.
bool UseInPlace(const Geometry& g, DType dtype, const Plan& p,
                const Overrides& o) {
  const bool possible = g.layout == Layout::kNHWC && g.depth_multiplier == 1 &&
                        (dtype == DType::kFloat || dtype == DType::kDouble) &&
                        p.out_depth >= p.lanes && p.taps() <= kMaxInPlaceTaps;
  if (!possible || o.in_place == 0) return false;
  if (o.in_place == 1) return true;
  const double bytes = static_cast<double>(DTypeSize(dtype)) *
                       (static_cast<double>(g.input_elements()) +
                        static_cast<double>(g.out_backprop_elements()));
  // In floating point: a dilation may be huge.
  const double edge = static_cast<double>(g.filter_cols - 1) *
                      static_cast<double>(g.dilation_cols) /
                      static_cast<double>(g.stride_cols);
  return p.taps() <= kMaxAutoInPlaceTaps && g.out_cols >= kMinAutoInPlaceCols &&
         static_cast<double>(g.out_cols) >= kMinAutoInPlaceEdgeRatio * edge &&
         bytes <= kMaxAutoInPlaceBytes;
}

// One step of shrinking a blocking to its budget: halves *value (rounding
// up) unless DWOP_CPU_PLAN fixed it (`fixed` > 0) or it is down to
// `floor`; returns whether it did.
bool Halve(int64_t fixed, int64_t floor, int64_t* value) {
  if (fixed != 0 || *value <= floor) return false;
  *value = CeilDiv(*value, 2);
  return true;
}

// In-place bands: enough output pixels to amortise a sweep's accumulator
// loads and stores and its edge runs, and at least the rows the filter
// spans, so that most input rows are reused within a band; all channels
// while the band's rows fit the budget, else narrower groups (down to 4
// vectors: NHWC runs of >= 256 bytes), then shorter bands.
void ChooseInPlaceBands(const Geometry& g, const Overrides& o, int64_t elem,
                        Plan* p) {
  const int64_t span =
      std::min(g.in_rows, (g.filter_rows - 1) * g.dilation_rows);
  const int64_t band = std::max(CeilDiv(kInPlacePixels, g.out_cols),
                                CeilDiv(span, g.stride_rows));
  p->group_blocks =
      o.group > 0 ? std::min(o.group, p->num_blocks) : p->num_blocks;
  p->band_rows = std::min(o.band > 0 ? o.band : band, g.out_rows);
  const int64_t min_group = std::min<int64_t>(4, p->num_blocks);
  while (InPlaceBandBytes(*p, elem) > kStageBudget) {
    if (!Halve(o.group, min_group, &p->group_blocks) &&
        !Halve(o.band, 1, &p->band_rows) &&
        !Halve(o.group, 1, &p->group_blocks)) {
      break;  // rows wider than the budget: they stream from memory
    }
  }
}

// Staging: start from all channels and a band tall enough to amortise the
// filter's vertical overlap, and shrink until the stage fits the budget.
// Memory-bound layers (few taps per input element) keep wide channel
// groups (long contiguous NHWC runs) and give up band height first;
// compute-bound ones keep tall bands (no re-staged overlap rows) and give
// up channels first. Narrower segments and fewer tap blocks per staging
// are the last resort (huge widths or dilations).
void ChooseStagedBands(const Geometry& g, const Overrides& o, int64_t elem,
                       Plan* p) {
  // Rows two consecutive bands share; at most the image's rows, which also
  // keeps 4 * overlap in range for dilations near INT64_MAX.
  const int64_t overlap =
      std::min({(g.filter_rows - 1) * g.dilation_rows,
                SaturatedMul(g.out_rows, g.stride_rows), g.in_rows});
  const int64_t tall =
      std::max(kMinBandRows, CeilDiv(2 * overlap, g.stride_rows));
  p->group_blocks =
      o.group > 0 ? std::min(o.group, p->num_blocks) : p->num_blocks;
  p->band_rows = std::min(o.band > 0 ? o.band : tall, g.out_rows);
  p->segment_cols =
      o.segment > 0 ? std::min(o.segment, g.out_cols) : g.out_cols;
  p->row_blocks_per_group = o.row_group > 0 ? o.row_group : p->num_row_blocks;
  p->col_blocks_per_group = o.col_group > 0 ? o.col_group : p->num_col_blocks;
  // In floating point: the product of two strides may not fit.
  const bool compute_bound =
      static_cast<double>(g.filter_rows) * g.filter_cols >=
      32.0 * static_cast<double>(g.stride_rows) * g.stride_cols;
  // Bands shorter than 4x the overlap stage each input row > 1.25 times.
  const int64_t low_overlap_band = std::min(
      p->band_rows, std::max<int64_t>(4, CeilDiv(4 * overlap, g.stride_rows)));
  const int64_t min_group =
      compute_bound ? 1 : std::min<int64_t>(4, p->num_blocks);
  while (StageBytes(*p, elem) > kStageBudget) {
    if (o.band == 0 && !compute_bound && p->band_rows > low_overlap_band) {
      p->band_rows = std::max(low_overlap_band, p->band_rows / 2);
    } else if (!Halve(o.group, min_group, &p->group_blocks) &&
               !Halve(o.band, 1, &p->band_rows) &&
               !Halve(o.group, 1, &p->group_blocks) &&
               !Halve(o.segment, 1, &p->segment_cols) &&
               !Halve(o.col_group, 1, &p->col_blocks_per_group) &&
               !Halve(o.row_group, 1, &p->row_blocks_per_group)) {
      break;  // the overrides asked for it; the minimum is a few hundred KB
    }
  }
}

// Everything but the buffers. Depends on the geometry, the dtype, the ISA
// level and DWOP_CPU_PLAN only.
void MakePlanWith(const Geometry& g, DType dtype, Isa isa, const Overrides& o,
                  PlanStorage* s) {
  Plan& p = s->plan;
  p = Plan();
  p.dtype = dtype;
  p.layout = g.layout;
  p.batch = g.batch;
  p.in_rows = g.in_rows;
  p.in_cols = g.in_cols;
  p.in_depth = g.in_depth;
  p.multiplier = g.depth_multiplier;
  p.filter_rows = g.filter_rows;
  p.filter_cols = g.filter_cols;
  p.out_rows = g.out_rows;
  p.out_cols = g.out_cols;
  p.stride_rows = g.stride_rows;
  p.stride_cols = g.stride_cols;
  p.dilation_rows = g.dilation_rows;
  p.dilation_cols = g.dilation_cols;
  p.pad_top = g.pad_top;
  p.pad_left = g.pad_left;
  p.out_depth = g.out_depth();
  p.partial_depth = CeilDiv(p.out_depth, kMaxLanes) * kMaxLanes;

  const IsaInfo& info = InfoOf(isa);
  const int64_t elem = AccumulatorSize(dtype);
  p.lanes = dtype == DType::kDouble ? info.lanes_double : info.lanes_float;
  p.num_blocks = CeilDiv(p.out_depth, p.lanes);

  s->row_valid = ValidRanges(g.filter_rows, g.in_rows, g.out_rows,
                             g.stride_rows, g.dilation_rows, g.pad_top);
  s->col_valid = ValidRanges(g.filter_cols, g.in_cols, g.out_cols,
                             g.stride_cols, g.dilation_cols, g.pad_left);

  // Tap block shape: the cheapest R x T by BlockingCost. T > 1 only while
  // the column hulls of a block have no gaps (dilation <= input width) and
  // the zero margins stay narrow.
  const bool unit_step = g.stride_cols == 1 && g.dilation_cols == 1;
  const int64_t max_acc = unit_step ? info.max_acc_shared : info.max_acc;
  double best_cost = -1;
  int64_t best_r = 1, best_t = 1;
  for (int64_t r = 1; r <= std::min<int64_t>(g.filter_rows, kMaxTapRows); ++r) {
    for (int64_t t = 1; t <= std::min<int64_t>(g.filter_cols, kMaxTapCols);
         ++t) {
      if (r * t > max_acc) continue;
      if (o.tap_rows > 0 && r != std::min<int64_t>(o.tap_rows, g.filter_rows))
        continue;
      if (o.tap_cols > 0 && t != std::min<int64_t>(o.tap_cols, g.filter_cols))
        continue;
      if (t > 1 && (g.dilation_cols > g.in_cols ||
                    (t - 1) * g.dilation_cols > kMaxMargin)) {
        continue;
      }
      const double cost =
          BlockingCost(s->row_valid, s->col_valid, Split(g.filter_rows, r),
                       Split(g.filter_cols, t), (t - 1) * g.dilation_cols,
                       g.out_rows, unit_step);
      if (best_cost < 0 || cost < best_cost) {
        best_cost = cost;
        best_r = r;
        best_t = t;
      }
    }
  }
  s->row_blocks = Split(g.filter_rows, best_r);
  s->col_blocks = Split(g.filter_cols, best_t);
  p.row_valid = s->row_valid.data();
  p.col_valid = s->col_valid.data();
  p.row_blocks = s->row_blocks.data();
  p.num_row_blocks = static_cast<int64_t>(s->row_blocks.size());
  p.col_blocks = s->col_blocks.data();
  p.num_col_blocks = static_cast<int64_t>(s->col_blocks.size());
  p.margin = (best_t - 1) * g.dilation_cols;
  p.step_stride_cols = std::min(g.stride_cols, g.in_cols + kMaxMargin);
  p.step_dilation_cols = std::min(g.dilation_cols, g.in_cols + kMaxMargin);

  p.in_place = UseInPlace(g, dtype, p, o);
  if (p.in_place) {
    MakeColumnRuns(s);
    ChooseInPlaceBands(g, o, elem, &p);
  } else {
    ChooseStagedBands(g, o, elem, &p);
  }

  // Chunks: channel groups x pieces of the reduction rows. Every piece costs
  // a partial gradient to zero and to sum (two passes over piece_bytes), so
  // pieces are capped at a few percent of the arithmetic and at
  // kPartialBudget; channel groups, which cost nothing to combine, supply
  // the rest of the kTargetChunks.
  const int64_t rows_total = g.batch * g.out_rows;
  const int64_t piece_bytes =
      g.filter_rows * g.filter_cols * p.partial_depth * elem;
  p.work = static_cast<double>(rows_total) * g.out_cols * g.filter_rows *
           g.filter_cols * p.num_blocks;
  const double piece_cost =
      static_cast<double>(piece_bytes) / 8.0;  // ~FMA slots
  const int64_t max_pieces = std::max<int64_t>(
      1,
      std::min({rows_total, kPartialBudget / std::max<int64_t>(piece_bytes, 1),
                SaturatingInt64(0.05 * p.work / piece_cost)}));
  const int64_t target = std::max<int64_t>(
      1, std::min<int64_t>(kTargetChunks,
                           SaturatingInt64(p.work / kMinChunkWork)));
  p.num_groups = CeilDiv(p.num_blocks, p.group_blocks);
  if (o.pieces > 0) {
    p.num_pieces = std::min(o.pieces, std::max<int64_t>(rows_total, 1));
  } else {
    p.num_pieces = std::min(max_pieces, CeilDiv(target, p.num_groups));
    if (o.group == 0 && p.num_groups * p.num_pieces < target &&
        p.group_blocks > 1) {
      p.group_blocks = std::max<int64_t>(
          1, CeilDiv(p.num_blocks, CeilDiv(target, p.num_pieces)));
      p.num_groups = CeilDiv(p.num_blocks, p.group_blocks);
      p.num_pieces = std::min(max_pieces, CeilDiv(target, p.num_groups));
    }
  }
  // Balance the groups (equal block counts) without changing their number.
  p.group_blocks = CeilDiv(p.num_blocks, p.num_groups);
  p.num_groups = CeilDiv(p.num_blocks, p.group_blocks);
  SizeScratch(p, elem);
}

}  // namespace

// Work estimates are doubles (a product of sizes may pass 2^63 on absurd but
// valid geometries), and converting a double above int64's range is undefined.
int64_t SaturatingInt64(double x) {
  return x < 9.0e18 ? static_cast<int64_t>(x) : int64_t{9000000000000000000};
}

// The valid output range of each tap along one dimension: out positions o
// with 0 <= o*stride + k*dilation - pad < in_size.
std::vector<Range> ValidRanges(int64_t taps, int64_t in_size, int64_t out_size,
                               int64_t stride, int64_t dilation, int64_t pad) {
  std::vector<Range> valid(taps);
  for (int64_t k = 0; k < taps; ++k) {
    const int64_t offset = k * dilation - pad;
    valid[k].begin = std::max<int64_t>(0, CeilDiv(-offset, stride));
    valid[k].end = std::min(out_size, CeilDiv(in_size - offset, stride));
    if (valid[k].end < valid[k].begin) valid[k].end = valid[k].begin;
  }
  return valid;
}

// The valid taps at one position are contiguous: tap k reads inside the
// image for positions in valid[k], whose bounds do not increase with k.
int64_t TapRuns(const Range* valid, Range taps, int64_t begin, int64_t end,
                TapRun* runs) {
  int64_t count = 0;
  for (int64_t o = begin; o < end; ++o) {
    int64_t lo = taps.end, hi = taps.begin;
    for (int64_t k = taps.begin; k < taps.end; ++k) {
      if (valid[k].begin <= o && o < valid[k].end) {
        lo = std::min(lo, k);
        hi = k + 1;
      }
    }
    if (lo >= hi) continue;
    if (count > 0 && runs[count - 1].end == o &&
        runs[count - 1].tap_begin == lo && runs[count - 1].tap_end == hi) {
      runs[count - 1].end = o + 1;
    } else {
      runs[count++] = TapRun{o, o + 1, lo, hi};
    }
  }
  return count;
}

int64_t PlanBandRows(const Plan& p, int64_t oh_begin, int64_t oh_end,
                     int64_t kh_begin, int64_t kh_end, int64_t* rows,
                     int64_t* slot) {
  const int64_t khn = kh_end - kh_begin;
  int64_t count = 0;
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    for (int64_t kh = kh_begin; kh < kh_end; ++kh) {
      const int64_t ih = oh * p.stride_rows + kh * p.dilation_rows - p.pad_top;
      if (ih >= 0 && ih < p.in_rows) rows[count++] = ih;
    }
  }
  std::sort(rows, rows + count);
  count = std::unique(rows, rows + count) - rows;
  for (int64_t oh = oh_begin; oh < oh_end; ++oh) {
    for (int64_t kh = kh_begin; kh < kh_end; ++kh) {
      const int64_t ih = oh * p.stride_rows + kh * p.dilation_rows - p.pad_top;
      int64_t& s = slot[(oh - oh_begin) * khn + kh - kh_begin];
      s = ih >= 0 && ih < p.in_rows
              ? std::lower_bound(rows, rows + count, ih) - rows
              : -1;
    }
  }
  return count;
}

void MakePlan(const Geometry& g, DType dtype, Isa isa, PlanStorage* s) {
  MakePlanWith(g, dtype, isa, ReadOverrides(), s);
}

int64_t PartialBytes(const Plan& p) {
  return p.num_pieces * p.taps() * p.partial_depth * AccumulatorSize(p.dtype);
}

}  // namespace cpu
}  // namespace dwop
