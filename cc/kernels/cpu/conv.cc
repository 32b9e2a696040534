// The portable half of the CPU forward and input gradient: plans the work
// (conv_plan.h), packs the filter, runs the chunks through the caller's
// ParallelFor. The arithmetic lives in the per-ISA units (conv_avx512.cc,
// conv_avx2.cc, conv_generic.cc: conv.inc). Every dst element is summed by
// one chunk, in an order fixed by the plan, so results do not depend on the
// pool.
#include "cc/kernels/cpu/conv.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "cc/kernels/common/float16.h"
#include "cc/kernels/common/geometry.h"
#include "cc/kernels/cpu/conv_plan.h"
#include "cc/kernels/cpu/driver.h"

namespace dwop {
namespace cpu {

struct ConvPlanStorage {
  Isa isa;
  ConvPlan plan;
  std::vector<RowTap> row_taps;
  std::vector<int64_t> row_tap_first, band_src_rows, band_first;
  std::vector<ColPhase> phases;
  std::vector<int64_t> tap_lo, tap_hi;
  std::vector<ColGroup> col_groups;
};

namespace {

// Staged src rows + expansion buffer + NCHW row of one thread: half the 2 MB
// L2 of the target machine, so a band stays cache-resident while its rows
// are computed.
constexpr int64_t kStageBudget = int64_t{1} << 20;
// Chunks a large problem is cut into (enough to balance a handful of
// threads), and the vector FMAs below which a chunk is not worth splitting.
constexpr int64_t kTargetChunks = 32;
constexpr int64_t kMinChunkWork = int64_t{1} << 15;
// Dst rows per band at least (the src rows two bands share are staged
// twice).
constexpr int64_t kMinBandRows = 8;
// Columns a phase split off by a dilation keeps at least: one register
// block (DilationPhases).
constexpr int64_t kMinDilationPhase = 8;
// NCHW: bytes of staged src planes per group, at most (MakeConvPlan).
constexpr int64_t kPlaneGroupBytes = int64_t{64} << 10;
// Src and dst bytes from which dst is stored past the caches
// (ConvPlan::stream): measured on the benchmark's layers, a win from 64 MB
// (72-154 MB: 1.1-2.6x), even to a loss at 30-50 MB, where a large
// last-level cache still holds the output for the next op (the 2-core Xeon,
// whose L3 the system reports as 480 MB). Where the L3 is smaller than
// that, from its size (MakeConvPlan).
constexpr double kStreamBytes = 64.0 * (1 << 20);

// Row taps of every dst row, src rows as `slot` for now (BandRows remaps).
void MakeRowTaps(const Geometry& g, bool input_grad, ConvPlanStorage* s) {
  const std::vector<Range> valid =
      ValidRanges(g.filter_rows, g.in_rows, g.out_rows, g.stride_rows,
                  g.dilation_rows, g.pad_top);
  const int64_t dst_rows = input_grad ? g.in_rows : g.out_rows;
  s->row_taps.clear();
  s->row_tap_first.assign(1, 0);
  for (int64_t r = 0; r < dst_rows; ++r) {
    for (int64_t kh = 0; kh < g.filter_rows; ++kh) {
      const Range& v = valid[kh];
      if (v.begin >= v.end) continue;
      if (!input_grad) {
        if (r >= v.begin && r < v.end) {
          s->row_taps.push_back(
              {r * g.stride_rows + kh * g.dilation_rows - g.pad_top, kh});
        }
        continue;
      }
      // Tap kh reads input rows v.begin * stride + offset, ... (every
      // stride-th): r is one when the difference divides.
      const int64_t offset = kh * g.dilation_rows - g.pad_top;
      const int64_t d = r - offset;
      if (d % g.stride_rows != 0) continue;
      const int64_t oh = d / g.stride_rows;
      if (oh < v.begin || oh >= v.end) continue;
      for (int64_t m = 0; m < g.depth_multiplier; ++m) {
        s->row_taps.push_back({oh, m * g.filter_rows + kh});
      }
    }
    // The input gradient's taps read out_backprop rows downwards: turned
    // round, a dst row reads its src rows in increasing order, as the
    // forward does (the newest last; measured faster).
    if (input_grad) {
      std::reverse(s->row_taps.begin() + s->row_tap_first.back(),
                   s->row_taps.end());
    }
    s->row_tap_first.push_back(static_cast<int64_t>(s->row_taps.size()));
  }
}

// The most slots one band of `band` dst rows stages.
int64_t MaxBandSlots(const ConvPlan& p, const ConvPlanStorage& s,
                     int64_t band) {
  const int64_t per_row = p.input_grad ? p.multiplier : 1;
  std::vector<int64_t> seen(p.src_rows, -1);
  int64_t best = 0;
  for (int64_t b0 = 0; b0 < p.dst_rows; b0 += band) {
    int64_t count = 0;
    const int64_t end = std::min(p.dst_rows, b0 + band);
    for (int64_t i = s.row_tap_first[b0]; i < s.row_tap_first[end]; ++i) {
      int64_t& stamp = seen[s.row_taps[i].slot];
      if (stamp != b0) {
        stamp = b0;
        ++count;
      }
    }
    best = std::max(best, count * per_row);
  }
  return best;
}

// Fills band_src_rows / band_first and turns the row taps' src rows into
// slots of their band.
void MakeBands(ConvPlanStorage* s) {
  ConvPlan& p = s->plan;
  const int64_t per_row = p.input_grad ? p.multiplier : 1;
  s->band_src_rows.clear();
  s->band_first.assign(1, 0);
  for (int64_t band = 0; band < p.num_bands; ++band) {
    const int64_t r0 = band * p.band_rows;
    const int64_t r1 = std::min(p.dst_rows, r0 + p.band_rows);
    const int64_t first = static_cast<int64_t>(s->band_src_rows.size());
    for (int64_t i = s->row_tap_first[r0]; i < s->row_tap_first[r1]; ++i) {
      s->band_src_rows.push_back(s->row_taps[i].slot);
    }
    std::sort(s->band_src_rows.begin() + first, s->band_src_rows.end());
    s->band_src_rows.erase(
        std::unique(s->band_src_rows.begin() + first, s->band_src_rows.end()),
        s->band_src_rows.end());
    for (int64_t i = s->row_tap_first[r0]; i < s->row_tap_first[r1]; ++i) {
      RowTap& tap = s->row_taps[i];
      const int64_t index = std::lower_bound(s->band_src_rows.begin() + first,
                                             s->band_src_rows.end(), tap.slot) -
                            (s->band_src_rows.begin() + first);
      const int64_t m =
          p.input_grad ? tap.slice / (p.num_slices / p.multiplier) : 0;
      tap.slot = index * per_row + m;
    }
    s->band_first.push_back(static_cast<int64_t>(s->band_src_rows.size()));
  }
}

// Valid taps [lo, hi) of a phase's column whose tap 0 reads src column
// `base`, taps stepping `step` (> 0) columns, `taps` of them, in a src of
// `width` columns ([0, 0) when none). Division only: steps and bases may be
// huge.
Range TapRange(int64_t base, int64_t step, int64_t taps, int64_t width) {
  const int64_t lo = base < 0 ? CeilDiv(-base, step) : 0;
  const int64_t hi =
      base >= width ? 0 : std::min(taps, CeilDiv(width - base, step));
  return lo < hi ? Range{lo, hi} : Range{0, 0};
}

// Appends a phase of `taps` taps and the valid taps of its columns.
void AddPhase(const ColPhase& ph, int64_t taps, int64_t src_cols,
              ConvPlanStorage* s) {
  for (int64_t q = 0; q < ph.count; ++q) {
    const Range valid = taps == 0 ? Range{0, 0}
                                  : TapRange(ph.src_begin + q * ph.src_step,
                                             ph.tap_src_step, taps, src_cols);
    const int64_t col = ph.dst_begin + q * ph.dst_step;
    s->tap_lo[col] = valid.begin;
    s->tap_hi[col] = valid.end;
  }
  s->phases.push_back(ph);
}

int64_t Gcd(int64_t a, int64_t b) {
  while (b != 0) {
    const int64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// Into how many phases to split `count` columns whose src moves `step`
// columns from one to the next and `tap_step` (> 0) from one tap to the next:
// m = tap_step / step where that is a whole number above 1 and every phase
// keeps kMinDilationPhase columns. The columns of one residue modulo m then
// move as far along src as their taps (a dilation of m times the stride),
// so a register block shares its src loads (SharedRows, ramp blocks), where
// a block of the unsplit phase loads src for every FMA: measured 1.28x and
// 1.30x faster on DeepLab's 3x3 with dilation 2 (33x33x728), forward and
// input gradient, AVX2, 2 threads. (Phases of a few columns, ASPP's
// dilation 12 on 33 columns, would go singly, one src load per FMA still.)
int64_t DilationPhases(int64_t step, int64_t tap_step, int64_t count) {
  if (step <= 0 || tap_step <= step || tap_step % step != 0) return 1;
  const int64_t m = tap_step / step;
  return count / kMinDilationPhase >= m ? m : 1;
}

// Phase ph split by DilationPhases: phase sigma takes its columns sigma,
// sigma + m, ..., each appended with AddPhase.
void AddDilationPhases(const ColPhase& ph, int64_t taps, int64_t src_cols,
                       ConvPlanStorage* s) {
  const int64_t m = DilationPhases(ph.src_step, ph.tap_src_step, ph.count);
  for (int64_t sigma = 0; sigma < m; ++sigma) {
    AddPhase(ColPhase{ph.dst_begin + sigma * ph.dst_step, m * ph.dst_step,
                      CeilDiv(ph.count - sigma, m),
                      ph.src_begin + sigma * ph.src_step, m * ph.src_step,
                      ph.tap_src_step, ph.filter_begin, ph.filter_step},
             taps, src_cols, s);
  }
}

// Forward: tap kw of output column q reads input column q*stride +
// kw*dilation - pad, one phase split by AddDilationPhases. Input gradient:
// input columns of one residue modulo the stride form a phase; the filter
// columns whose taps reach them step by stride/gcd, the out_backprop columns
// by dilation/gcd the other way; each phase split again by
// AddDilationPhases. Its taps run from the last filter column down, so
// that, as in the forward, they read src left to right (the ramp, diagonal
// and shared-load blocks walk src one way only; read right to left, the
// 3x3 input gradient on 112x112x32 was 1.26x slower than the forward, one
// thread, AVX2: the src lines came in against the prefetchers).
void MakePhases(const Geometry& g, bool input_grad, ConvPlanStorage* s) {
  s->phases.clear();
  const int64_t dst_cols = input_grad ? g.in_cols : g.out_cols;
  s->tap_lo.assign(dst_cols, 0);
  s->tap_hi.assign(dst_cols, 0);
  if (!input_grad) {
    AddDilationPhases(ColPhase{0, 1, g.out_cols, -g.pad_left, g.stride_cols,
                               g.dilation_cols, 0, 1},
                      g.filter_cols, g.in_cols, s);
    return;
  }
  const std::vector<Range> valid =
      ValidRanges(g.filter_cols, g.in_cols, g.out_cols, g.stride_cols,
                  g.dilation_cols, g.pad_left);
  const int64_t gcd = Gcd(g.stride_cols, g.dilation_cols);
  const int64_t phases = std::min(g.stride_cols, g.in_cols);
  for (int64_t rho = 0; rho < phases; ++rho) {
    ColPhase ph{rho,
                g.stride_cols,
                CeilDiv(g.in_cols - rho, g.stride_cols),
                0,
                1,
                g.dilation_cols / gcd,
                0,
                -(g.stride_cols / gcd)};
    int64_t taps = 0;
    for (int64_t kw = g.filter_cols - 1; kw >= 0; --kw) {
      if (valid[kw].begin >= valid[kw].end) continue;
      const int64_t d = rho - (kw * g.dilation_cols - g.pad_left);
      if (d % g.stride_cols != 0) continue;
      if (taps == 0) {
        ph.filter_begin = kw;
        ph.src_begin = d / g.stride_cols;
      }
      ++taps;
    }
    AddDilationPhases(ph, taps, g.out_cols, s);
  }
}

// How many columns from q (up to `end`) of a phase go into one register
// block: max_block, half that, ... down to 4 when the taps they share are at
// least two and half of their taps (their valid ranges are monotone in q,
// so the ends bound the common range), else 1.
int64_t GroupWidth(const ConvPlanStorage& s, const ColPhase& ph, int64_t q,
                   int64_t end, int64_t max_block) {
  const bool wide = s.plan.filter_cols > s.plan.src_cols;
  for (int64_t width = max_block; width >= 4; width /= 2) {
    if (q + width > end) continue;
    const int64_t first = ph.dst_begin + q * ph.dst_step;
    const int64_t last = first + (width - 1) * ph.dst_step;
    const int64_t lo = std::max(s.tap_lo[first], s.tap_lo[last]);
    const int64_t hi = std::min(s.tap_hi[first], s.tap_hi[last]);
    // (One common tap saves nothing: every column still adds its others
    // one call at a time; measured 2x slower than single columns on 4x4
    // maps with 3x3 filters.)
    if (hi - lo < 2) continue;
    const int64_t total =
        (s.tap_hi[first] - s.tap_lo[first]) + (s.tap_hi[last] - s.tap_lo[last]);
    // Common >= half of the taps (on average); >= 3/4 for a filter wider
    // than the map where single columns share their src loads
    // (ColumnDiagonal: measured faster there, slower for 13x13 on 16x16).
    if (wide && ph.tap_src_step == ph.src_step ? 8 * (hi - lo) >= 3 * total
                                               : 4 * (hi - lo) >= total) {
      return width;
    }
  }
  return 1;
}

// How many columns from q of a phase have the same valid taps as q's.
int64_t ExactRun(const ConvPlanStorage& s, const ColPhase& ph, int64_t q) {
  const int64_t col = ph.dst_begin + q * ph.dst_step;
  int64_t run = 1;
  while (q + run < ph.count) {
    const int64_t next = col + run * ph.dst_step;
    if (s.tap_lo[next] != s.tap_lo[col] || s.tap_hi[next] != s.tap_hi[col]) {
      break;
    }
    ++run;
  }
  return run;
}

// How many columns from q (up to `end`) of a phase form a diagonal run
// (ColGroup::diagonal): the same number of taps, shifted by one from column
// to column the way that makes them all read the same src pixels; 0 where
// the phase's taps do not move as far as its columns.
int64_t DiagonalRun(const ConvPlanStorage& s, const ColPhase& ph, int64_t q,
                    int64_t end) {
  if (ph.tap_src_step != ph.src_step) return 0;
  const int64_t col = ph.dst_begin + q * ph.dst_step;
  if (s.tap_hi[col] <= s.tap_lo[col]) return 0;
  int64_t run = 1;
  while (q + run < end) {
    const int64_t next = col + run * ph.dst_step;
    if (s.tap_lo[next] != s.tap_lo[col] - run ||
        s.tap_hi[next] != s.tap_hi[col] - run) {
      break;
    }
    ++run;
  }
  return run;
}

// Whether the `width` columns from q of phase pi form a register block
// whose columns all have the same taps or a ramp block (ColGroup), written
// to *g if so.
bool RampBlock(const ConvPlanStorage& s, int64_t pi, int64_t q, int64_t width,
               ColGroup* g) {
  const ColPhase& ph = s.phases[pi];
  if (q < 0 || q + width > ph.count || ph.tap_src_step != ph.src_step) {
    return false;
  }
  const auto col = [&](int64_t b) {
    return ph.dst_begin + (q + b) * ph.dst_step;
  };
  *g = ColGroup{pi, q, width, s.tap_lo[col(0)], s.tap_hi[col(0)]};
  for (int64_t b = 1; b < width; ++b) {
    g->lo = std::max(g->lo, s.tap_lo[col(b)]);
    g->hi = std::min(g->hi, s.tap_hi[col(b)]);
  }
  if (g->hi <= g->lo) return false;
  for (int64_t b = 0; b < width; ++b) {
    g->low_taps = std::max(g->low_taps, g->lo - s.tap_lo[col(b)]);
    g->high_taps = std::max(g->high_taps, s.tap_hi[col(b)] - g->hi);
  }
  for (int64_t b = 0; b < width; ++b) {
    if (g->lo - s.tap_lo[col(b)] != std::min(b, g->low_taps) ||
        s.tap_hi[col(b)] - g->hi != std::min(width - 1 - b, g->high_taps)) {
      return false;
    }
  }
  return true;
}

// The width of the odd ramp blocks (RampTiling).
constexpr int64_t kOddBlock = 7;

// Every column of phase pi in register blocks of max_block columns (the
// last one, or a last one of 4 where at most 4 columns remain, ending at
// the last column), each one with the same taps in every column or a ramp
// block: appended, and true, where those blocks cover the phase (maps
// wider than the filter, or not much narrower: none of their columns go
// singly). A ramp block of 4 or 8 columns whose taps all shift by one goes
// in the diagonal kernel (measured 8-26% faster on 13x13 and 27x27 filters
// over 4 and 8 columns).
bool RampTiling(int64_t pi, int64_t max_block, ConvPlanStorage* s) {
  const int64_t count = s->phases[pi].count;
  std::vector<ColGroup> blocks;
  for (int64_t q = 0; q < count;) {
    const int64_t rest = count - q;
    ColGroup g;
    // The last 7 columns (a map of 7, as ImageNet networks end with) in one
    // ramp block of kOddBlock, diagonal or not (on AVX2 and AVX-512 its one
    // shared tap a template argument, RampBlocks in conv.inc: measured
    // 1.05-1.25x faster than diagonal blocks of 4 on 9x9 to 27x27 filters
    // over 7 columns; the portable level's runtime ramp was 1.1x faster
    // there too).
    if (rest == kOddBlock && kOddBlock < max_block &&
        RampBlock(*s, pi, q, rest, &g) && g.ramp()) {
      blocks.push_back(g);
      break;
    }
    const int64_t width =
        rest >= max_block || (rest > 4 && count >= max_block) ? max_block : 4;
    if (count < width ||
        !RampBlock(*s, pi, std::min(q, count - width), width, &g)) {
      return false;
    }
    if (g.low_taps == width - 1 && g.high_taps == width - 1) {
      const int64_t first =
          s->phases[pi].dst_begin + g.q * s->phases[pi].dst_step;
      g = ColGroup{pi, g.q, width, s->tap_lo[first], s->tap_hi[first]};
      g.diagonal = true;
    }
    blocks.push_back(g);
    q = g.q + width;
  }
  s->col_groups.insert(s->col_groups.end(), blocks.begin(), blocks.end());
  return true;
}

// The column schedule of every row (ConvPlan::col_groups): register blocks
// of up to max_block columns, then the single columns. Where a phase's taps
// move as far as its columns (no dilation, or as much as the stride), its
// edges are ramps: all its columns in blocks (RampTiling; measured 1.1-1.6x
// faster than the schedule below on 5x5 to 31x31 filters, edges of 2 to 16
// columns). Otherwise columns with the same taps (the interior of a map
// wider than the filter) go in blocks of their own, which need no extra
// taps column by column; the others (edges, and maps not much wider than
// the filter) in diagonal blocks where they read the same src pixels
// (DiagonalRun), else in blocks whose columns share most of their taps
// (GroupWidth), which stop where a run of 4 columns with the same taps
// starts (so that a narrow edge goes singly, with several channel blocks
// at once), or singly.
void MakeColGroups(int64_t max_block, ConvPlanStorage* s) {
  s->col_groups.clear();
  std::vector<ColGroup> singles;
  for (int64_t pi = 0; pi < static_cast<int64_t>(s->phases.size()); ++pi) {
    if (RampTiling(pi, max_block, s)) continue;
    const ColPhase& ph = s->phases[pi];
    // Where the next run of at least 4 columns with the same taps (some)
    // starts.
    int64_t run_start = 0, run = 0;
    auto next_run = [&](int64_t from) {
      for (run_start = from; run_start < ph.count; run_start += run) {
        run = ExactRun(*s, ph, run_start);
        const int64_t col = ph.dst_begin + run_start * ph.dst_step;
        if (run >= 4 && s->tap_hi[col] > s->tap_lo[col]) return;
      }
      run = 0;
    };
    next_run(0);
    for (int64_t q = 0; q < ph.count;) {
      const int64_t first = ph.dst_begin + q * ph.dst_step;
      const int64_t lo = s->tap_lo[first], hi = s->tap_hi[first];
      if (q == run_start) {
        // Blocks of max_block columns (of 4 in a shorter run); the last
        // one overlaps the one before: its first columns are computed
        // twice, alike, cheaper than singly.
        const int64_t width = run >= max_block ? max_block : 4;
        for (; run > 0; run -= std::min(run, width)) {
          const int64_t start = q + std::min<int64_t>(0, run - width);
          s->col_groups.push_back({pi, start, width, lo, hi});
          q += std::min(run, width);
        }
        next_run(q);
        continue;
      }
      // A diagonal run: blocks of max_block (or 4) columns, the last one
      // overlapping the one before.
      const int64_t diagonal = DiagonalRun(*s, ph, q, run_start);
      if (diagonal >= 4) {
        const int64_t width = diagonal >= max_block ? max_block : 4;
        for (int64_t left = diagonal; left > 0;) {
          const int64_t start = q + std::min<int64_t>(0, left - width);
          const int64_t col = ph.dst_begin + start * ph.dst_step;
          ColGroup group{pi, start, width, s->tap_lo[col], s->tap_hi[col]};
          group.diagonal = true;
          s->col_groups.push_back(group);
          q += std::min(left, width);
          left -= std::min(left, width);
        }
        continue;
      }
      const int64_t width = GroupWidth(*s, ph, q, run_start, max_block);
      if (width == 1) {
        singles.push_back({pi, q, 1, lo, hi});
      } else {
        const int64_t last = first + (width - 1) * ph.dst_step;
        s->col_groups.push_back({pi, q, width, std::max(lo, s->tap_lo[last]),
                                 std::min(hi, s->tap_hi[last])});
      }
      q += width;
    }
  }
  s->plan.num_blocks_groups = static_cast<int64_t>(s->col_groups.size());
  s->col_groups.insert(s->col_groups.end(), singles.begin(), singles.end());
  s->plan.num_col_groups = static_cast<int64_t>(s->col_groups.size());
}

// Per-thread scratch of a group of `group` blocks and `slots` staged slots.
void SizeScratch(ConvPlan& p, int64_t slots) {
  const int64_t L = p.lanes;
  const int64_t G = p.group_blocks;
  p.max_band_slots = slots;
  p.slot_stride = G * p.src_cols * L;
  p.expand_elems = 0;
  if (p.multiplier > 1) {
    // Src channels one group reads, as blocks (forward: they may start
    // mid-block, so one more).
    const int64_t channels =
        p.input_grad ? G * L * p.multiplier : CeilDiv(G * L, p.multiplier) + L;
    p.expand_elems = (CeilDiv(channels, L) + 1) * L * p.src_cols;
  }
  p.out_row_elems = p.layout == Layout::kNCHW ? G * p.dst_cols * L : 0;
  if (p.direct) {
    // Only a last channel block short of lanes is staged (pairs: through
    // the expansion of one block's channels).
    const bool tail = p.dst_depth % L != 0;
    p.max_band_slots = tail ? slots : 0;
    p.slot_stride = tail ? p.src_cols * L : 0;
    p.expand_elems =
        tail && p.multiplier > 1
            ? (CeilDiv(CeilDiv(L, p.multiplier) + L, L) + 1) * L * p.src_cols
            : 0;
  }
  p.scratch_bytes =
      2 * p.max_row_taps * static_cast<int64_t>(sizeof(void*)) +
      (p.max_band_slots * p.slot_stride + p.expand_elems + p.out_row_elems) *
          AccumulatorSize(p.dtype);
}

void MakeConvPlan(const Geometry& g, DType dtype, bool input_grad, Isa isa,
                  ConvPlanStorage* s) {
  ConvPlan& p = s->plan;
  p = ConvPlan();
  p.input_grad = input_grad;
  p.dtype = dtype;
  p.layout = g.layout;
  p.batch = g.batch;
  p.multiplier = g.depth_multiplier;
  p.filter_cols = g.filter_cols;
  if (!input_grad) {
    p.src_rows = g.in_rows, p.src_cols = g.in_cols, p.src_depth = g.in_depth;
    p.dst_rows = g.out_rows, p.dst_cols = g.out_cols,
    p.dst_depth = g.out_depth();
    p.num_slices = g.filter_rows;
  } else {
    p.src_rows = g.out_rows, p.src_cols = g.out_cols,
    p.src_depth = g.out_depth();
    p.dst_rows = g.in_rows, p.dst_cols = g.in_cols, p.dst_depth = g.in_depth;
    p.num_slices = g.filter_rows * g.depth_multiplier;
  }
  const IsaInfo& info = InfoOf(isa);
  p.lanes = dtype == DType::kDouble ? info.lanes_double : info.lanes_float;
  p.num_blocks = CeilDiv(p.dst_depth, p.lanes);
  p.filter_block_stride = p.num_slices * g.filter_cols * p.lanes;
  p.workspace_bytes =
      p.num_blocks * p.filter_block_stride * AccumulatorSize(dtype);

  // In place where nothing needs spreading or transposing, but for a last
  // channel block short of lanes, which is staged (measured 1.3-1.5x faster
  // than staging every block, as a channel count off the lanes did, on 120,
  // 200 and 728 channels). Half and bfloat16 too, widened as they are
  // loaded, where the ISA level does that in a vector instruction or two:
  // their staged copy, written to L2 and read back, cost more than the
  // arithmetic (a 3x3 layer in cache took 2.2x float32's time; read in
  // place, as long as float32). Staged, though, where the pixels lie a
  // multiple of 1 KiB apart (a column's taps then share a few L1 sets) and a
  // filter wider than a map of 16 columns or more has each column walk most
  // of the row: measured 6-18% faster there (29x29 filters on 20x20 and
  // 28x28 maps of 256 channels), where in place was 7-44% faster on every
  // other layer with such pixels (7x7 on 7x7x768 and 28x28x768, 3x3 on
  // 28x28x256 and 56x56x256, 27x27 on 14x14x512; a Xeon). And staged
  // wherever the pixels lie a multiple of 4 KiB apart: every pixel then
  // falls in the same L1 set, whose 8 to 12 ways hold fewer lines than a
  // register block reads (a 3x3 block of 8 columns: 30), so in place the
  // loads miss L1 (AVX2 EPYC, 2 threads, staged: DeepLab's ASPP, 3x3 with
  // dilation 12 on 33x33x2048, 3.0x faster; 3x3 on 14x14x2048 1.66x and
  // 1.04x, forward and input gradient; 13x13 on 7x7x1024 1.20x and 0.98x;
  // 3x3 on 7x7x1024 1.20x and 1.58x; float64 and half and bfloat16 pixels
  // of 4 and 8 KiB 0.96x to 1.65x).
  const int64_t pixel_bytes = p.src_depth * DTypeSize(dtype);
  const bool aliased = (pixel_bytes % 1024 == 0 && g.filter_cols > p.src_cols &&
                        p.src_cols >= 16) ||
                       pixel_bytes % 4096 == 0;
  // A forward with a depth multiplier of 2 (EEGNet's) reads float32 in place
  // too (ConvPlan::pairs): staged, its rows were spread to twice their size
  // and read back, 60% of EEGNet's time (64x1 filter over 64x128x8; in
  // place 1.8x faster on one core, 1.6x on two, Zen 1 EPYC; 3x3 to 13x13
  // layers 1.0-1.4x). Not where one whole block comes with a staged tail
  // (3-5% slower: two passes over the rows where one did).
  p.pairs = !input_grad && g.layout == Layout::kNHWC &&
            g.depth_multiplier == 2 && dtype == DType::kFloat &&
            (p.dst_depth == p.lanes || p.dst_depth >= 2 * p.lanes) && !aliased;
  p.direct = (g.layout == Layout::kNHWC && g.depth_multiplier == 1 &&
              (dtype == DType::kFloat || dtype == DType::kDouble ||
               isa != Isa::kGeneric) &&
              !aliased) ||
             p.pairs;
  // (src and dst are the input and out_backprop, in either order.)
  const double bytes = static_cast<double>(AccumulatorSize(dtype)) *
                       (static_cast<double>(g.input_elements()) +
                        static_cast<double>(g.out_backprop_elements()));
  // Pixels that start on a cache line, and a vector that fills one, or,
  // where the L3 is smaller than kStreamBytes, half of one (AVX2: the
  // register blocks store a line's two halves one channel block apart,
  // which the write-combining buffers merge). Half lines measured slower on
  // the Xeon with its 480 MB L3 from 64 MB; on the Zen 1 EPYC, whose 2-core
  // share the system reports as 8 MB, AVX2 streaming from 12 MB was 1.1x to
  // 1.6x faster (3x3 to 7x7 layers of 12 to 154 MB, forward and input
  // gradient, both cores).
  const double l3 = static_cast<double>(L3CacheBytes());
  const bool small_l3 = l3 > 0 && l3 < kStreamBytes;
  p.stream = g.layout == Layout::kNHWC &&
             (dtype == DType::kFloat || dtype == DType::kDouble) &&
             p.dst_depth * AccumulatorSize(dtype) % 64 == 0 &&
             (p.lanes * AccumulatorSize(dtype) == 64 || small_l3) &&
             bytes >= (small_l3 ? l3 : kStreamBytes);
  MakeRowTaps(g, input_grad, s);
  MakePhases(g, input_grad, s);
  // Register blocks of 8 columns (16 measured slower on AVX-512: more edge
  // blocks), diagonal ones too. With 16 registers (AVX2, the portable
  // level) the 8 sums, 8 filter vectors and a src vector of a diagonal
  // block of 8 do not all fit, yet the compiler's filter operands from L1
  // kept it 1.2x faster than blocks of 4, whose sums wait on the FMA
  // latency (27x27 filters over 14x14 and 8x8 maps, Zen 1).
  MakeColGroups(8, s);
  for (int64_t r = 0; r < p.dst_rows; ++r) {
    p.max_row_taps =
        std::max(p.max_row_taps, s->row_tap_first[r + 1] - s->row_tap_first[r]);
  }
  double row_taps = static_cast<double>(s->row_taps.size());
  double col_taps = 0;
  for (size_t col = 0; col < s->tap_lo.size(); ++col) {
    col_taps += static_cast<double>(s->tap_hi[col] - s->tap_lo[col]);
  }
  p.work = static_cast<double>(g.batch) * row_taps * col_taps * p.num_blocks;

  // Bands and groups: all channels and bands of at least kMinBandRows (and
  // twice the rows a filter spans) while the staging fits the budget, else
  // narrower groups (down to 4 blocks), shorter bands, narrower groups.
  // NCHW instead takes whole planes (shorter bands where they do not fit)
  // and one channel block, or as many as kPlaneGroupBytes of small planes:
  // each chunk then reads and writes its planes front to back, streams the
  // hardware prefetchers follow, where a group of all channels and a band
  // of 8 rows read and wrote a few rows of each of hundreds of planes
  // (1.5-2.7x slower on float32 maps of 14x14 and larger, one thread or
  // two). Small planes lie close together anyway, and one block of them
  // per chunk was up to 25% slower (7x7 maps, AVX2).
  // (In floating point: a dilation may be huge.)
  const double filter_span = std::min(
      static_cast<double>(g.filter_rows) * static_cast<double>(g.dilation_rows),
      static_cast<double>(p.src_rows));
  const int64_t span =
      std::min(p.dst_rows, CeilDiv(static_cast<int64_t>(filter_span),
                                   input_grad ? 1 : g.stride_rows));
  const bool planes = p.layout == Layout::kNCHW;
  // (In floating point, at least a byte: a plane may be huge or empty.)
  const double plane_bytes =
      std::max(1.0, static_cast<double>(p.lanes * AccumulatorSize(dtype)) *
                        static_cast<double>(p.src_rows) *
                        static_cast<double>(p.src_cols));
  p.group_blocks =
      planes ? std::clamp<int64_t>(
                   static_cast<int64_t>(kPlaneGroupBytes / plane_bytes), 1,
                   p.num_blocks)
             : p.num_blocks;
  p.band_rows = planes ? p.dst_rows
                       : std::min(p.dst_rows, std::max(kMinBandRows, 2 * span));
  const int64_t min_group = std::min<int64_t>(4, p.num_blocks);
  for (;;) {
    SizeScratch(p, MaxBandSlots(p, *s, p.band_rows));
    if (p.scratch_bytes <= kStageBudget) break;
    if (p.group_blocks > min_group) {
      p.group_blocks = CeilDiv(p.group_blocks, 2);
    } else if (p.band_rows > 1) {
      p.band_rows = CeilDiv(p.band_rows, 2);
    } else if (p.group_blocks > 1) {
      p.group_blocks = CeilDiv(p.group_blocks, 2);
    } else {
      break;  // rows wider than the budget: staged anyway
    }
  }
  // Enough chunks for the threads: narrower groups first (free), then
  // shorter bands (which stage shared rows twice).
  const int64_t target = std::max<int64_t>(
      1, std::min<int64_t>(kTargetChunks,
                           SaturatingInt64(p.work / kMinChunkWork)));
  auto chunks = [&] {
    return g.batch * CeilDiv(p.dst_rows, p.band_rows) *
           CeilDiv(p.num_blocks, p.group_blocks);
  };
  while (chunks() < target) {
    if (p.group_blocks > 2) {
      p.group_blocks = CeilDiv(p.group_blocks, 2);
    } else if (p.band_rows > 2) {
      p.band_rows = CeilDiv(p.band_rows, 2);
    } else if (p.group_blocks > 1) {
      p.group_blocks = 1;
    } else if (p.band_rows > 1) {
      p.band_rows = 1;
    } else {
      break;
    }
  }
  p.num_groups = CeilDiv(p.num_blocks, p.group_blocks);
  p.group_blocks = CeilDiv(p.num_blocks, p.num_groups);  // balanced
  p.num_bands = CeilDiv(p.dst_rows, p.band_rows);
  p.band_rows = CeilDiv(p.dst_rows, p.num_bands);
  p.num_bands = CeilDiv(p.dst_rows, p.band_rows);
  SizeScratch(p, MaxBandSlots(p, *s, p.band_rows));
  MakeBands(s);

  p.row_taps = s->row_taps.data();
  p.row_tap_first = s->row_tap_first.data();
  p.band_src_rows = s->band_src_rows.data();
  p.band_first = s->band_first.data();
  p.phases = s->phases.data();
  p.num_phases = static_cast<int64_t>(s->phases.size());
  p.tap_lo = s->tap_lo.data();
  p.tap_hi = s->tap_hi.data();
  p.col_groups = s->col_groups.data();
}

// Packs channel blocks [begin, end) of the filter (ConvPlan::filter).
template <typename T>
void PackFilter(const Geometry& g, const ConvPlan& p, const T* filter,
                int64_t begin, int64_t end, void* out) {
  using Acc = typename AccumulatorOf<T>::type;
  const int64_t M = g.depth_multiplier, L = p.lanes;
  for (int64_t block = begin; block < end; ++block) {
    Acc* to = static_cast<Acc*>(out) + block * p.filter_block_stride;
    for (int64_t slice = 0; slice < p.num_slices; ++slice) {
      const int64_t kh = slice % g.filter_rows, m = slice / g.filter_rows;
      for (int64_t kw = 0; kw < g.filter_cols; ++kw, to += L) {
        const T* from = filter + (kh * g.filter_cols + kw) * g.out_depth();
        if (p.pairs && (block + 1) * L <= p.dst_depth) {
          // Read in place as pairs: lane i holds the block's src channel
          // i % (L/2), multiplier i / (L/2).
          for (int64_t i = 0; i < L; ++i) {
            to[i] = Load(from + block * L + i % (L / 2) * 2 + i / (L / 2));
          }
          continue;
        }
        if ((M == 1 || !p.input_grad) && (block + 1) * L <= p.dst_depth) {
          // A whole block of consecutive channels: a straight copy (the
          // scalar loop below cost as much as a small layer's arithmetic).
          for (int64_t i = 0; i < L; ++i) to[i] = Load(from + block * L + i);
          continue;
        }
        for (int64_t i = 0; i < L; ++i) {
          const int64_t c = block * L + i;
          to[i] = c < p.dst_depth ? Load(from + (p.input_grad ? c * M + m : c))
                                  : Acc(0);
        }
      }
    }
  }
}

struct IsaChunk {
  void (*run)(const ConvPlan& plan, int64_t chunk, void* scratch);
};
constexpr IsaChunk kIsaChunks[] = {
    {&generic::RunConvChunk}, {&avx2::RunConvChunk}, {&avx512::RunConvChunk}};

Status RunConv(const ConvPlanStorage& storage, const Geometry& g,
               const void* src, const void* filter, void* dst, void* workspace,
               const ParallelFor& parallel_for) {
  ConvPlan plan = storage.plan;
  plan.src = src;
  plan.dst = dst;
  plan.filter = workspace;
  plan.stream = plan.stream && reinterpret_cast<uintptr_t>(dst) % 64 == 0;
  ForType(plan.dtype, [&](auto zero) {
    using T = decltype(zero);
    const T* f = static_cast<const T*>(filter);
    parallel_for(plan.num_blocks, plan.filter_block_stride * 4,
                 [&](int64_t begin, int64_t end) {
                   PackFilter(g, plan, f, begin, end, workspace);
                 });
  });
  const auto run_chunk = kIsaChunks[static_cast<int>(storage.isa)].run;
  std::atomic<bool> out_of_memory{false};
  parallel_for(
      plan.num_chunks(), SaturatingInt64(plan.work / plan.num_chunks()) + 1000,
      [&](int64_t begin, int64_t end) {
        // (At least a line: a fresh thread's empty buffer is null.)
        void* scratch =
            ThreadScratch(std::max<int64_t>(plan.scratch_bytes, kScratchAlign));
        if (scratch == nullptr) {
          out_of_memory = true;
          return;
        }
        for (int64_t c = begin; c < end; ++c) run_chunk(plan, c, scratch);
      });
  if (out_of_memory) {
    return Status::ResourceExhausted("could not allocate " +
                                     std::to_string(plan.scratch_bytes) +
                                     " bytes of CPU staging memory");
  }
  return Status::Ok();
}

}  // namespace
}  // namespace cpu

namespace {

template <typename Params>
std::unique_ptr<cpu::ConvPlanStorage> MakeStorage(const Params& params,
                                                  bool input_grad) {
  if (NothingToSum(params.geo)) return nullptr;
  auto storage = std::make_unique<cpu::ConvPlanStorage>();
  storage->isa = cpu::ActiveIsa();
  cpu::MakeConvPlan(params.geo, params.dtype, input_grad, storage->isa,
                    storage.get());
  return storage;
}

}  // namespace

CpuConvPlan::CpuConvPlan(const ForwardParams& params)
    : storage_(MakeStorage(params, false)) {}

CpuConvPlan::CpuConvPlan(const InputGradParams& params)
    : storage_(MakeStorage(params, true)) {}

CpuConvPlan::~CpuConvPlan() = default;

int64_t CpuConvPlan::workspace_bytes() const {
  return storage_ != nullptr ? storage_->plan.workspace_bytes : 0;
}

Status RunCpu(const ForwardParams& params, const CpuConvPlan& plan,
              void* workspace, const ParallelFor& parallel_for) {
  if (WriteZerosIfNothingToSum(params)) return Status::Ok();
  return cpu::RunConv(*plan.storage_, params.geo, params.input, params.filter,
                      params.output, workspace, parallel_for);
}

Status RunCpu(const InputGradParams& params, const CpuConvPlan& plan,
              void* workspace, const ParallelFor& parallel_for) {
  if (WriteZerosIfNothingToSum(params)) return Status::Ok();
  return cpu::RunConv(*plan.storage_, params.geo, params.out_backprop,
                      params.filter, params.in_backprop, workspace,
                      parallel_for);
}

}  // namespace dwop
