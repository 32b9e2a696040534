"""The fast CPU forward and input gradient (cc/kernels/cpu/conv*) through the
C ABI, without TensorFlow.

Like tests/cpu_kernel_test.py (whose ISA switching, tile-edge geometries and
extents this suite reuses): every ISA level runs in this one process
(DWOP_CPU_ISA is read on every call), each case is checked against the
float64 NumPy oracle (python/reference.py) with a per-dtype tolerance and
against the naive C++ reference backend, and outputs are NaN-poisoned by
python/cabi.py before every call, so an element the kernel forgets to write
fails.
"""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

import testing
import tolerance as tolerance_policy

import cases  # pylint: disable=g-import-not-at-top,wrong-import-order
import cpu_kernel_test  # pylint: disable=g-import-not-at-top,wrong-import-order
import reference  # pylint: disable=g-import-not-at-top,wrong-import-order

ISA_LEVELS = cpu_kernel_test.ISA_LEVELS
OPS = ("forward", "input_grad")
environment = cpu_kernel_test.environment
supported_levels = cpu_kernel_test.supported_levels


def filter_values(case, seed):
  """A filter exactly representable in every dtype (like random_inputs)."""
  rng = np.random.default_rng(seed + 101)
  return rng.integers(-8, 9, case.filter) / 8.0


def operands(op, case, seed):
  """The op's float64 operands: (input, filter) or (filter, out_backprop)."""
  x, dy = case.random_inputs(seed=seed)
  f = filter_values(case, seed)
  return (x, f) if op == "forward" else (f, dy)


def run(op, case, a, b, backend="cpu", num_threads=2):
  dtype = testing.numpy_dtype(case.dtype)
  lib = cpu_kernel_test.library()
  args = (case.tf_strides, case.tf_padding, case.data_format,
          case.tf_dilations)
  if op == "forward":
    got = lib.forward(a.astype(dtype), b.astype(dtype), *args,
                      backend=backend, num_threads=num_threads)
  else:
    got = lib.input_grad(case.input_shape, a.astype(dtype), b.astype(dtype),
                         *args, backend=backend, num_threads=num_threads)
  return got.astype(np.float64)


def oracle(op, case, a, b):
  args = (case.tf_strides, case.tf_padding, case.data_format,
          case.tf_dilations)
  if op == "forward":
    return reference.depthwise_conv2d(a, b, *args)
  return reference.depthwise_conv2d_backprop_input(case.input_shape, a, b,
                                                   *args)


def tolerance(op, case, a, b):
  """The shared policy's bound (python/tolerance.py) for this op's result."""
  return tolerance_policy.conv_atol(op, case.dtype, a, b, case.filter)


@functools.lru_cache(maxsize=None)
def expected(op, case):
  """(a, b, float64 oracle, C++ reference backend) of a case, computed once
  (read-only arrays: callers share them)."""
  a, b = operands(op, case, seed=len(case.name))
  arrays = (a, b, oracle(op, case, a, b), run(op, case, a, b, "reference"))
  for v in arrays:
    v.flags.writeable = False
  return arrays


# Filters much larger than the map (most taps read padding, no column block
# has uniform taps: diagonal blocks) and a strided, dilated input gradient of
# many phases.
def _variants(specs, layouts_dtypes):
  """Cases named <name>_<layout>_<dtype> from (name, input, filter,
  strides, padding, dilations) specs, one per (layout, dtype)."""
  return [cases.Case(f"{name}_{layout.lower()}_{dtype}", x, f, s, p, d,
                     layout, dtype)
          for name, x, f, s, p, d in specs
          for layout, dtype in layouts_dtypes]


LARGE_FILTER_CASES = _variants([
        ("k31_on_14x14", (1, 14, 14, 20), (31, 31, 20, 1), (1, 1), "SAME",
         (1, 1)),
        ("k27_on_8x8", (2, 8, 8, 17), (27, 27, 17, 1), (1, 1), "SAME",
         (1, 1)),
        # Diagonal register blocks of 4 columns, the second overlapping.
        ("k13_on_7x7", (2, 7, 7, 24), (13, 13, 24, 1), (1, 1), "SAME",
         (1, 1)),
        ("k7_s3_d2_m2", (1, 23, 25, 6), (7, 7, 6, 2), (3, 3),
         ((4, 7), (2, 9)), (2, 2)),
        ("s4x3_d3x2_k5x6", (2, 19, 22, 9), (5, 6, 9, 1), (4, 3), "SAME",
         (3, 2)),
    ], [(layout, dtype) for layout in cases.LAYOUTS
        for dtype in ("float32", "bfloat16")]) + [
    # Every tap reads padding: no row has a tap (and, read in place, the
    # kernel needs no scratch at all), the result is zeros.
    cases.Case(f"all_padding_{dtype}", (2, 1, 1, 16), (1, 1, 16, 1), (3, 3),
               ((2, 0), (2, 0)), (1, 1), "NHWC", dtype)
    for dtype in ("float32", "float64")
]


# NHWC without a multiplier, read in place (ConvPlan::direct) where the
# channels fill whole vectors. Half and bfloat16, widened as loaded: 16
# channels (AVX-512 and AVX2), 24 (AVX2 only; staged on AVX-512), through
# every kind of column block (register blocks with and without extra taps,
# strided phases, dilations, diagonal blocks, single diagonal columns).
DIRECT_CASES = [
    cases.Case(f"{name}_{dtype}", x, f, s, p, d, "NHWC", dtype)
    for name, x, f, s, p, d in [
        ("k3", (2, 9, 21, 32), (3, 3, 32, 1), (1, 1), "SAME", (1, 1)),
        ("k5_s2", (1, 15, 17, 48), (5, 5, 48, 1), (2, 2), "SAME", (1, 1)),
        ("k7_d2_c24", (1, 12, 19, 24), (7, 7, 24, 1), (1, 1), "SAME",
         (2, 2)),
        ("k13_on_7x7", (2, 7, 7, 32), (13, 13, 32, 1), (1, 1), "SAME",
         (1, 1)),
        ("k31_on_14x14", (1, 14, 14, 16), (31, 31, 16, 1), (1, 1), "SAME",
         (1, 1)),
    ]
    for dtype in ("float16", "bfloat16")
] + [
    # Pixels a multiple of 1 KiB apart: read in place, but staged under a
    # filter wider than a map of 16 columns or more (cc/kernels/cpu/conv.cc).
    cases.Case("kib_pixels_k3", (1, 9, 11, 256), (3, 3, 256, 1), (1, 1),
               "SAME", (1, 1)),
    cases.Case("kib_pixels_k3_bfloat16", (1, 6, 9, 512), (3, 3, 512, 1),
               (1, 1), "SAME", (1, 1), "NHWC", "bfloat16"),
    cases.Case("kib_pixels_k19_on_17", (1, 16, 17, 256), (19, 19, 256, 1),
               (1, 1), "SAME", (1, 1)),
]


# Depth multipliers, whose staged rows spread (forward) or gather (input
# gradient) channels with one or two-vector permutes, or lane by lane where
# a block's lanes reach three vectors: M = 2 over 24 channels (the input
# gradient's 16-lane blocks read two vectors), M = 3 over 11 and M = 5 over
# 7 (forward blocks that straddle two vectors, gradient blocks that reach
# three or more), in both dtypes the staging widens.
MULTIPLIER_CASES = [
    cases.Case(f"m{f[3]}_c{x[3]}_{dtype}", x, f, s, "SAME", (1, 1), "NHWC",
               dtype)
    for x, f, s in [
        ((2, 9, 10, 24), (3, 3, 24, 2), (1, 1)),
        ((1, 11, 8, 11), (5, 3, 11, 3), (2, 1)),
        ((1, 7, 9, 7), (3, 5, 7, 5), (1, 2)),
    ]
    for dtype in ("float32", "bfloat16")
]


# The forward of a depth multiplier of 2, float32, read in place as pairs
# (ConvPlan::pairs): 4 channels (one AVX2 block; staged on AVX-512), 8 (one
# block of either), 12 (three AVX2 blocks; staged on AVX-512: one block and
# a tail), 20 (five AVX2 blocks; two AVX-512 blocks and a staged tail),
# 6 (staged: one AVX2 block and a tail), 9 and 13 (AVX2 and portable blocks
# and a staged tail), 64 (groups of blocks that start past the first,
# several chunks), through every kind of column block, and EEGNet's 64x1
# filter.
PAIR_CASES = _variants([
        ("k3_c4", (2, 9, 21, 4), (3, 3, 4, 2), (1, 1), "SAME", (1, 1)),
        ("k5_s2_c8", (1, 15, 17, 8), (5, 5, 8, 2), (2, 2), "SAME", (1, 1)),
        ("k7_d2_c12", (1, 12, 19, 12), (7, 7, 12, 2), (1, 1),
         ((3, 5), (0, 6)), (2, 2)),
        ("k13_on_7x7_c20", (2, 7, 7, 20), (13, 13, 20, 2), (1, 1), "SAME",
         (1, 1)),
        ("k31_on_14x14_c8", (1, 14, 14, 8), (31, 31, 8, 2), (1, 1), "SAME",
         (1, 1)),
        ("k3_c6", (1, 10, 11, 6), (3, 3, 6, 2), (1, 2), "SAME", (1, 1)),
        ("eegnet_k64x1_c8", (2, 64, 40, 8), (64, 1, 8, 2), (1, 1), "VALID",
         (1, 1)),
        ("k3_c9_tail", (1, 10, 12, 9), (3, 3, 9, 2), (1, 1), "SAME", (1, 1)),
        ("k5_s2x1_c13_tail", (1, 9, 23, 13), (5, 5, 13, 2), (2, 1), "SAME",
         (1, 1)),
        ("k3_c64_groups", (1, 64, 64, 64), (3, 3, 64, 2), (1, 1), "SAME",
         (1, 1)),
    ], [("NHWC", "float32")])


# Every column in register blocks (RampTiling in cc/kernels/cpu/conv.cc):
# ramp blocks with taps beyond the common ones at one end or both
# (ColGroup::low_taps, high_taps), up to 7 (31x31 over 40 columns, 13x13
# with an explicit padding of 9 on the left, 29x29 over 16 columns: both
# ends), only some of their columns reaching the most (7x7 over 20
# columns), the last block ending at the last column and overlapping the
# one before (7x7 over 20 columns), a last block of 7 (maps of 7 and 15
# columns under 3x3, 5x5 and 7x7 filters), a strided and dilated
# forward (its taps move as far as its columns) whose strided input
# gradient has a phase per column residue, dilations of a multiple of the
# stride whose columns split into phases by residue (DilationPhases: stride
# 1 and dilation 2 over 33 columns, stride 2 and dilation 6 over 50, whose
# input gradient splits each stride phase in 3); in place and staged, both
# layouts.
RAMP_CASES = _variants([
        ("k31_on_40", (1, 6, 40, 20), (31, 31, 20, 1), (1, 1), "SAME",
         (1, 1)),
        ("k13_pad_9_2", (1, 5, 30, 16), (13, 13, 16, 1), (1, 1),
         ((6, 6), (9, 2)), (1, 1)),
        ("k7_on_20", (2, 8, 20, 16), (7, 7, 16, 1), (1, 1), "SAME", (1, 1)),
        ("k7_on_7", (2, 7, 7, 24), (7, 7, 24, 1), (1, 1), "SAME", (1, 1)),
        ("k5_on_7", (2, 7, 7, 20), (5, 5, 20, 1), (1, 1), "SAME", (1, 1)),
        ("k3_on_15", (1, 5, 15, 16), (3, 3, 16, 1), (1, 1), "SAME", (1, 1)),
        # The edge blocks whose shared taps are a template argument (3x3,
        # 5x5 and 7x7 at one end, one tap shared at both), two channel
        # blocks each.
        ("k5_on_14", (1, 6, 14, 32), (5, 5, 32, 1), (1, 1), "SAME", (1, 1)),
        ("k3_on_7", (2, 7, 7, 32), (3, 3, 32, 1), (1, 1), "SAME", (1, 1)),
        # A diagonal block of 7 (every column reads all 7 src columns).
        ("k13_on_7", (2, 7, 7, 32), (13, 13, 32, 1), (1, 1), "SAME",
         (1, 1)),
        ("k29_on_16", (1, 5, 16, 16), (29, 29, 16, 1), (1, 1), "SAME",
         (1, 1)),
        ("k9_s2_d2", (1, 9, 40, 16), (9, 9, 16, 1), (2, 2), "SAME", (2, 2)),
        ("k5_d2_on_33", (1, 6, 33, 24), (5, 5, 24, 1), (1, 1), "SAME",
         (2, 2)),
        ("k3_s2_d6_on_50", (1, 7, 50, 16), (3, 3, 16, 1), (2, 2), "SAME",
         (6, 6)),
    ], [("NHWC", "float32"), ("NCHW", "float32"), ("NHWC", "bfloat16")])


def _named(case_list, levels=ISA_LEVELS):
  return [(f"{op}_{c.name}_{isa}", op, c, isa)
          for c in case_list for op in OPS for isa in levels]


class CheckMixin:
  """Runs a case on one ISA level against the oracle and the reference."""

  def check(self, op, case, isa, num_threads=2):
    if isa not in supported_levels():
      self.skipTest(f"this CPU has no {isa}")
    a, b, want, ref = expected(op, case)
    with environment(DWOP_CPU_ISA=isa):
      self.assertEqual(cpu_kernel_test.cpu_isa(), isa)
      got = run(op, case, a, b, num_threads=num_threads)
    self.assertEqual(got.shape, want.shape)
    rtol, atol = testing.RTOL[case.dtype], tolerance(op, case, a, b)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol,
                               err_msg="dwop vs the float64 oracle")
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol,
                               err_msg="dwop vs the reference backend")


class ConvKernelTest(CheckMixin, parameterized.TestCase):

  @parameterized.named_parameters(_named(cases.CONFORMANCE))
  def test_conformance(self, op, case, isa):
    self.check(op, case, isa)

  @parameterized.named_parameters(_named(cpu_kernel_test.extra_cases()))
  def test_tile_edges(self, op, case, isa):
    self.check(op, case, isa)

  @parameterized.named_parameters(_named(LARGE_FILTER_CASES))
  def test_large_filters_and_phases(self, op, case, isa):
    self.check(op, case, isa, num_threads=3)

  @parameterized.named_parameters(_named(RAMP_CASES))
  def test_ramp_blocks(self, op, case, isa):
    self.check(op, case, isa)

  @parameterized.named_parameters(_named(DIRECT_CASES))
  def test_read_in_place(self, op, case, isa):
    self.check(op, case, isa)

  @parameterized.named_parameters(_named(MULTIPLIER_CASES))
  def test_depth_multiplier_spread(self, op, case, isa):
    self.check(op, case, isa)

  @parameterized.named_parameters(_named(PAIR_CASES))
  def test_depth_multiplier_pairs(self, op, case, isa):
    self.check(op, case, isa)

  @parameterized.named_parameters(_named(cpu_kernel_test.EXTENT_CASES))
  def test_large_extents(self, op, case, isa):
    self.check(op, case, isa)

  @parameterized.named_parameters(
      (f"{op}_{c.name}", op, c) for c in cases.BENCH for op in OPS
      if c.name != "replk_56x56x128_k31")
  def test_bench_layers_scaled_down(self, op, case):
    # The benchmark's geometries with the planner's own choices, on one
    # image and a channel count that leaves a tail.
    _, h, w, c = case.input
    small = case.replace(input=(1, h, w, min(c, 20)),
                         filter=case.filter[:2] + (min(c, 20), case.filter[3]))
    self.check(op, small, supported_levels()[0])


# Problems whose src and dst hold at least 64 MiB: an accumulator-typed NHWC
# dst goes out with stores past the caches (ConvPlan::stream, kStreamBytes
# in cc/kernels/cpu/conv.cc) where a vector fills a cache line (AVX-512), or
# on any vector level where the L3 is smaller than that (AVX2's half lines).
# A depth of whole lines, then a stride 2 input gradient (its phases write
# every other pixel), float64 (8 lanes a line) and a depth multiplier of 2
# read as pairs (ConvPlan::pairs: sums put back in channel order, then
# streamed).
STREAMED_CASES = [
    cases.Case("streamed_3x3", (1, 520, 520, 32), (3, 3, 32, 1), (1, 1),
               "SAME", (1, 1)),
    cases.Case("streamed_s2", (2, 362, 362, 64), (5, 5, 64, 1), (2, 2),
               "SAME", (1, 1)),
    cases.Case("streamed_float64", (1, 370, 370, 32), (3, 3, 32, 1), (1, 1),
               "SAME", (1, 1), "NHWC", "float64"),
    cases.Case("streamed_pairs", (1, 420, 420, 32), (3, 3, 32, 2), (1, 1),
               "SAME", (1, 1)),
]


# NCHW chunks take whole planes (MakeConvPlan in cc/kernels/cpu/conv.cc):
# one channel block of planes too large for the staging budget, which then
# run in bands of rows (a 3x3, and a 5x5 with row stride 2 and column
# dilation 2, with a short last block); many blocks of small planes per
# chunk (a multiplier's spread among them), in both dtypes the staging
# widens.
PLANE_CASES = [
    cases.Case(f"{name}_{dtype}", x, f, s, "SAME", d, "NCHW", dtype)
    for name, x, f, s, d in [
        ("tall_3x3", (1, 300, 170, 20), (3, 3, 20, 1), (1, 1), (1, 1)),
        ("tall_5x5_s2_d2", (1, 290, 181, 20), (5, 5, 20, 1), (2, 1), (1, 2)),
        ("small_planes", (3, 7, 7, 72), (7, 7, 72, 1), (1, 1), (1, 1)),
        ("small_planes_m2", (2, 6, 5, 40), (3, 3, 40, 2), (1, 1), (1, 1)),
    ]
    for dtype in ("float32", "bfloat16")
]


class PlanesTest(CheckMixin, parameterized.TestCase):

  @parameterized.named_parameters(_named(PLANE_CASES))
  def test_nchw_planes(self, op, case, isa):
    self.check(op, case, isa)


class StreamedStoresTest(CheckMixin, parameterized.TestCase):

  @parameterized.named_parameters(
      (f"{op}_{c.name}", op, c) for c in STREAMED_CASES for op in OPS)
  def test_large_outputs(self, op, case):
    # The best level only (the others store as usual); every element is
    # checked (the output is NaN-poisoned first).
    self.check(op, case, supported_levels()[0])


class DeterminismTest(parameterized.TestCase):

  @parameterized.named_parameters(
      (f"{op}_{name}", op, case) for op in OPS for name, case in [
          ("many_chunks",
           cases.Case("d", (4, 30, 30, 48), (7, 7, 48, 1), (1, 1), "SAME",
                      (1, 1))),
          ("strided_bf16",
           cases.Case("d", (3, 17, 19, 40), (5, 5, 40, 1), (2, 1), "SAME",
                      (1, 1), "NHWC", "bfloat16")),
          ("ramps",
           cases.Case("d", (2, 6, 40, 20), (31, 31, 20, 1), (1, 1), "SAME",
                      (1, 1))),
          ("nchw_multiplier",
           cases.Case("d", (2, 21, 18, 12), (3, 3, 12, 2), (2, 2), "SAME",
                      (1, 1), "NCHW")),
      ])
  def test_bitwise_equal_for_any_thread_count(self, op, case):
    a, b = operands(op, case, seed=3)
    # Values that are not small dyadic numbers, so that a different
    # summation order would show in the last bits.
    rng = np.random.default_rng(1)
    a = a + rng.standard_normal(a.shape) * 1e-3
    b = b + rng.standard_normal(b.shape) * 1e-3
    for isa in supported_levels():
      with environment(DWOP_CPU_ISA=isa):
        first = run(op, case, a, b, num_threads=1)
        for threads in (2, 3, 7, 1):
          got = run(op, case, a, b, num_threads=threads)
          np.testing.assert_array_equal(
              got.view(np.uint64), first.view(np.uint64),
              err_msg=f"{isa}, {threads} threads")


class OverflowTest(parameterized.TestCase):
  """Steps near INT64_MAX (cpu_kernel_test.OVERFLOW_CASES): right answers,
  no overflow."""

  @parameterized.named_parameters(
      (f"{op}_{c[0]}_{isa}", op, c, isa) for c in
      cpu_kernel_test.OVERFLOW_CASES for op in OPS for isa in ISA_LEVELS)
  def test_huge_steps(self, op, spec, isa):
    if isa not in supported_levels():
      self.skipTest(f"this CPU has no {isa}")
    _, dtype, x_shape, filt, dy_shape, strides, padding, layout, dil = spec
    rng = np.random.default_rng(5)
    np_dtype = testing.numpy_dtype(dtype)
    f = rng.standard_normal(filt).astype(np_dtype)
    lib = cpu_kernel_test.library()
    if op == "forward":
      x = rng.standard_normal(x_shape).astype(np_dtype)
      call = functools.partial(lib.forward, x, f, strides, padding, layout,
                               dil)
    else:
      dy = rng.standard_normal(dy_shape).astype(np_dtype)
      call = functools.partial(lib.input_grad, x_shape, f, dy, strides,
                               padding, layout, dil)
    with environment(DWOP_CPU_ISA=isa):
      got = call(backend="cpu", num_threads=2).astype(np.float64)
    want = call(backend="reference").astype(np.float64)
    a, b = (x, f) if op == "forward" else (f, dy)
    atol = tolerance_policy.conv_atol(op, dtype, a, b, filt,
                                      tolerance_policy.TWO_RESULTS)
    np.testing.assert_allclose(got, want, rtol=testing.RTOL[dtype], atol=atol)


if __name__ == "__main__":
  absltest.main()
