"""The fast CPU kernel (cc/kernels/cpu/) through the C ABI, without TensorFlow.

Every ISA level runs in this one process: DWOP_CPU_ISA is read by the library
on every call (cc/kernels/cpu/cpu.cc), so a test sets it around its calls. Each
case is checked against the float64 NumPy oracle (python/reference.py) with a
per-dtype tolerance and against the naive C++ reference backend; outputs are
NaN-poisoned by python/cabi.py before every call, so an element the kernel
forgets to write fails. DWOP_CPU_PLAN (a testing knob of the planner) forces
small tiles so that small tensors reach the tiling edges that only large
ones reach by default: several bands, reduction pieces, channel groups,
column segments and staging groups of tap blocks.
"""

import contextlib
import ctypes
import functools
import os

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

import cabi
import cases
import testing
import tolerance

ISA_LEVELS = ("avx512", "avx2", "generic")

_LIB = None


def library():
  global _LIB
  if _LIB is None:
    _LIB = cabi.Library()
    _LIB.lib.dwop_cpu_isa.restype = ctypes.c_char_p
  return _LIB


def cpu_isa():
  return library().lib.dwop_cpu_isa().decode()


def _set_environment(values):
  for k, v in values.items():
    if v is None:
      os.environ.pop(k, None)
    else:
      os.environ[k] = v


@contextlib.contextmanager
def environment(**values):
  """Sets environment variables (None unsets) for the duration."""
  saved = {k: os.environ.get(k) for k in values}
  try:
    _set_environment(values)
    yield
  finally:
    _set_environment(saved)


def supported_levels():
  """The levels this CPU runs natively (the best one and everything below)."""
  with environment(DWOP_CPU_ISA=None):
    best = cpu_isa()
  return ISA_LEVELS[ISA_LEVELS.index(best):]


def run(case, x, dy, backend="cpu", num_threads=2):
  return library().filter_grad(
      x.astype(testing.numpy_dtype(case.dtype)), case.filter,
      dy.astype(testing.numpy_dtype(case.dtype)),
      case.tf_strides, case.tf_padding, case.data_format, case.tf_dilations,
      backend=backend, num_threads=num_threads).astype(np.float64)


def _read_only(*arrays):
  for a in arrays:
    a.flags.writeable = False
  return arrays


@functools.lru_cache(maxsize=None)
def expected(case):
  """(x, dy, float64 oracle, C++ reference backend) of a case, computed once
  whatever the ISA or plan (read-only arrays: callers share them)."""
  x, dy = case.random_inputs(seed=len(case.name))
  return _read_only(x, dy, testing.oracle(case, x, dy),
                    run(case, x, dy, backend="reference"))


def _extra_geometries():
  """(name, input NHWC, filter, strides, padding, dilations) for tile edges."""
  return [
      # Channel tails around the vector widths (4, 8, 16 lanes) and the
      # expansion of input channels for multipliers.
      ("c1", (2, 6, 7, 1), (3, 3, 1, 1), (1, 1), "SAME", (1, 1)),
      ("c15", (1, 7, 6, 15), (3, 3, 15, 1), (1, 1), "SAME", (1, 1)),
      ("c31_m1", (1, 5, 9, 31), (3, 2, 31, 1), (1, 1), "VALID", (1, 1)),
      ("c5_m3", (2, 6, 6, 5), (3, 3, 5, 3), (1, 1), "SAME", (1, 1)),
      ("c7_m5", (1, 6, 5, 7), (2, 3, 7, 5), (1, 1), "SAME", (1, 1)),
      ("c3_m16", (1, 5, 5, 3), (3, 3, 3, 16), (1, 1), "SAME", (1, 1)),
      ("c2_m9_s2", (1, 9, 8, 2), (3, 3, 2, 9), (2, 2), "SAME", (1, 1)),
      # Rows longer and shorter than the 4-column register sharing and the
      # 16-column NCHW transposes.
      ("w37", (1, 4, 37, 6), (3, 5, 6, 1), (1, 1), "SAME", (1, 1)),
      ("w3_k7", (2, 9, 3, 4), (7, 7, 4, 1), (1, 1), "SAME", (1, 1)),
      # Tap blocks: every shape of the split, filters taller/wider than the
      # image, one-row and one-column filters.
      ("k9x11", (1, 12, 14, 5), (9, 11, 5, 1), (1, 1), "SAME", (1, 1)),
      ("k17_on_6x6", (1, 6, 6, 3), (17, 17, 3, 1), (1, 1), "SAME", (1, 1)),
      ("k1x13", (1, 5, 20, 4), (1, 13, 4, 1), (1, 1), "SAME", (1, 1)),
      ("k13x1", (1, 20, 5, 4), (13, 1, 4, 1), (1, 1), "VALID", (1, 1)),
      ("k8_even", (1, 10, 11, 3), (8, 8, 3, 1), (1, 1), "SAME", (1, 1)),
      # Steps: strides larger than the filter, dilations larger than the
      # image (one-column tap blocks), both together, unequal everything.
      ("s4_k2", (1, 13, 14, 3), (2, 2, 3, 1), (4, 4), "VALID", (1, 1)),
      ("s3x1_d1x4", (2, 11, 19, 3), (3, 4, 3, 1), (3, 1), "SAME", (1, 4)),
      ("d9_over_w6", (1, 7, 6, 3), (2, 3, 3, 1), (1, 1), ((2, 3), (9, 9)),
       (9, 9)),
      ("s2_d3_k5", (1, 17, 18, 4), (5, 5, 4, 2), (2, 2), "SAME", (3, 3)),
      # Paddings: all-padding taps and rows, asymmetric explicit pads.
      ("pad_big", (1, 4, 5, 3), (3, 3, 3, 1), (1, 1), ((5, 4), (6, 7)),
       (1, 1)),
      ("pad_asym_s2", (2, 7, 9, 4), (4, 3, 4, 1), (2, 2), ((0, 3), (3, 0)),
       (1, 1)),
  ]


def extra_cases():
  out = []
  for name, x, f, s, p, d in _extra_geometries():
    for layout in cases.LAYOUTS:
      for dtype in ("float32", "float64", "bfloat16", "float16"):
        out.append(cases.Case(f"{name}_{layout.lower()}_{dtype}", x, f, s, p,
                              d, layout, dtype))
  return out


# Extents that make the planner itself cut rows into segments, channels into
# groups or filters into staging groups (float32 only: they are large).
EXTENT_CASES = [
    cases.Case("wide_row_segments", (1, 3, 20000, 16), (3, 3, 16, 1), (1, 1),
               "SAME", (1, 1)),
    cases.Case("wide_row_segments_nchw", (1, 2, 9000, 20), (3, 2, 20, 1),
               (1, 2), "SAME", (1, 1), "NCHW"),
    cases.Case("many_channels", (1, 4, 5, 3000), (3, 3, 3000, 1), (1, 1),
               "SAME", (1, 1)),
    cases.Case("tall_filter", (2, 300, 2, 3), (70, 1, 3, 2), (1, 1), "VALID",
               (1, 1)),
    cases.Case("huge_dilation", (1, 5, 7, 2), (2, 2, 2, 1), (1, 1),
               ((400, 0), (500, 0)), (400, 500)),
    cases.Case("huge_pads_stride", (1, 6, 5, 3), (3, 3, 3, 1), (7, 9),
               ((300, 200), (100, 400)), (1, 1)),
    cases.Case("filter_rows_over_padding", (1, 10, 3, 1), (3000, 2, 1, 1),
               (1, 1), ((2996, 0), (1, 0)), (1, 1)),
]

# Plans that force the rarely reached paths; each is run on TILING_CASES.
PLAN_OVERRIDES = {
    "band1_pieces3": "band=1,pieces=3",
    "band2_group1": "band=2,group=1,pieces=2",
    "segments": "segment=3,band=3",
    "tap_groups": "rows=2,cols=2,rowgroup=1,colgroup=1,pieces=5",
    "one_tap_blocks": "rows=1,cols=1,segment=5",
    "big_blocks": "rows=8,cols=3",
    # In-place sweeps (NHWC float32/float64 without a multiplier; the other
    # cases ignore inplace=1): bands, groups, pieces and tap blocks that
    # split the edge runs differently, and the staged path they replace.
    "in_place": "inplace=1,band=2,pieces=3",
    "in_place_groups": "inplace=1,group=1,band=1,pieces=2",
    "in_place_tap_blocks": "inplace=1,rows=2,cols=2,pieces=5",
    "in_place_one_tap": "inplace=1,rows=1,cols=1,band=3",
    "in_place_big_blocks": "inplace=1,rows=8,cols=3,band=7",
    "staged": "inplace=0",
}

TILING_CASES = [
    cases.Case("tile_k5_c40", (3, 11, 13, 40), (5, 5, 40, 1), (1, 1), "SAME",
               (1, 1)),
    cases.Case("tile_k3_s2_m2_nchw", (2, 12, 15, 9), (3, 3, 9, 2), (2, 1),
               "SAME", (1, 1), "NCHW"),
    cases.Case("tile_k7_d2_bf16", (2, 14, 12, 20), (7, 6, 20, 1), (1, 1),
               ((3, 4), (5, 1)), (2, 1), "NHWC", "bfloat16"),
    cases.Case("tile_k11_f64", (1, 9, 17, 10), (11, 9, 10, 1), (1, 2),
               "SAME", (1, 1), "NHWC", "float64"),
    # In place: a short last channel block on every level (23 = 16 + 7 =
    # 2 * 8 + 7 = 5 * 4 + 3), strided and dilated edge runs.
    cases.Case("tile_k3_s2_d2_c23", (2, 13, 17, 23), (3, 4, 23, 1), (2, 1),
               "SAME", (2, 2)),
    cases.Case("tile_k5_f64_c9", (2, 10, 19, 9), (5, 5, 9, 1), (1, 1),
               ((1, 3), (4, 0)), (1, 1), "NHWC", "float64"),
]


def _named(case_list, levels=ISA_LEVELS):
  return [(f"{c.name}_{isa}", c, isa) for c in case_list for isa in levels]


class CpuKernelTest(parameterized.TestCase):

  def check(self, case, isa, plan=None, num_threads=2):
    if isa not in supported_levels():
      self.skipTest(f"this CPU has no {isa}")
    x, dy, want, ref = expected(case)
    with environment(DWOP_CPU_ISA=isa, DWOP_CPU_PLAN=plan):
      self.assertEqual(cpu_isa(), isa)
      got = run(case, x, dy, num_threads=num_threads)
    tol = testing.tolerance(case.dtype, x, dy, case)
    self.assertEqual(got.shape, tuple(case.filter))
    testing.assert_close(got, want, tol, "dwop vs the float64 oracle")
    testing.assert_close(got, ref, tol * tolerance.TWO_RESULTS,
                         "dwop vs the reference backend")
    if case.is_empty:  # exact zeros, not merely small ones
      np.testing.assert_array_equal(got, 0)

  @parameterized.named_parameters(_named(cases.CONFORMANCE))
  def test_conformance(self, case, isa):
    self.check(case, isa)

  @parameterized.named_parameters(_named(extra_cases()))
  def test_tile_edges(self, case, isa):
    self.check(case, isa)

  @parameterized.named_parameters(_named(EXTENT_CASES))
  def test_large_extents(self, case, isa):
    self.check(case, isa)

  @parameterized.named_parameters(_named(
      [c for c in extra_cases() + EXTENT_CASES
       if c.data_format == "NHWC" and c.dtype in ("float32", "float64") and
       c.filter[3] == 1]))
  def test_in_place(self, case, isa):
    # The tile-edge geometries swept in place (where the channels fill a
    # vector: others fall back to staging), whatever the automatic choice.
    self.check(case, isa, plan="inplace=1")

  @parameterized.named_parameters(
      (f"{c.name}_{name}_{isa}", c, plan, isa)
      for c in TILING_CASES for name, plan in PLAN_OVERRIDES.items()
      for isa in ISA_LEVELS)
  def test_forced_tiling(self, case, plan, isa):
    self.check(case, isa, plan=plan, num_threads=3)

  @parameterized.named_parameters(
      (c.name, c) for c in cases.BENCH if c.name != "replk_56x56x128_k31")
  def test_bench_layers_scaled_down(self, case):
    # The benchmark's geometries with the planner's own choices, on one image
    # and a channel count that leaves a tail, so the oracle stays quick.
    n, h, w, c = case.input
    m = case.filter[3]
    small = case.replace(input=(1, h, w, min(c, 20)),
                         filter=case.filter[:2] + (min(c, 20), m))
    self.check(small, supported_levels()[0])


_DETERMINISM_CASES = (
    ("auto_many_chunks",
     cases.Case("d", (8, 30, 30, 48), (7, 7, 48, 1), (1, 1), "SAME",
                (1, 1)), None),
    ("pieces_and_groups_bf16",
     cases.Case("d", (3, 17, 19, 40), (5, 5, 40, 1), (2, 1), "SAME", (1, 1),
                "NHWC", "bfloat16"), "pieces=7,group=1,band=3"),
    ("in_place",
     cases.Case("d", (3, 19, 21, 37), (3, 5, 37, 1), (1, 1), "SAME",
                (1, 1)), "inplace=1,pieces=7,band=2"),
    ("nchw_multiplier",
     cases.Case("d", (2, 21, 18, 12), (3, 3, 12, 2), (1, 1), "SAME", (1, 1),
                "NCHW"), "pieces=5,group=1"),
)


class DeterminismTest(parameterized.TestCase):

  @parameterized.named_parameters(
      (f"{name}_{isa}", case, plan, isa)
      for name, case, plan in _DETERMINISM_CASES for isa in ISA_LEVELS)
  def test_bitwise_equal_for_any_thread_count(self, case, plan, isa):
    if isa not in supported_levels():
      self.skipTest(f"this CPU has no {isa}")
    x, dy = case.random_inputs(seed=3)
    # Values that are not small dyadic numbers, so that a different
    # summation order would show in the last bits.
    rng = np.random.default_rng(1)
    x = x + rng.standard_normal(x.shape) * 1e-3
    dy = dy + rng.standard_normal(dy.shape) * 1e-3
    with environment(DWOP_CPU_ISA=isa, DWOP_CPU_PLAN=plan):
      first = run(case, x, dy, num_threads=1)
      for threads in (2, 3, 7, 1, 2):
        got = run(case, x, dy, num_threads=threads)
        np.testing.assert_array_equal(
            got.view(np.uint64), first.view(np.uint64),
            err_msg=f"{isa}, {threads} threads")


# Steps near INT64_MAX: valid problems on which the planner and the
# micro-kernels once formed products that overflow int64 (UBSan). Each is
# (name, dtype, input, filter, out_backprop, strides, padding, layout,
# dilations), in the op's 4-entry attribute form.
_I64_MAX = 2**63 - 1
OVERFLOW_CASES = [
    ("ceil_div_stride_int64_max", "bfloat16", (2, 1, 9, 2), (1, 1, 2, 1),
     (2, 1, 9, 2), (1, _I64_MAX, 1, 1), "VALID", "NHWC", (1, 1, 1, 1)),
    ("stride_cols_2_62_nchw", "float32", (3, 4, 6, 5), (5, 1, 4, 3),
     (3, 12, 2, 1), (1, 1, 3, 2**62), "SAME", "NCHW", (1, 1, 1, 1)),
    ("stride_and_dilation_rows_2_62", "float32", (1, 3, 3, 1), (2, 1, 1, 1),
     (1, 1, 3, 1), (1, 2**62, 1, 1), "SAME", "NHWC", (1, 2**62, 1, 1)),
    ("dilation_rows_2_62", "float64", (1, 3, 3, 2), (2, 1, 2, 1),
     (1, 3, 3, 2), (1, 1, 1, 1), "SAME", "NHWC", (1, 2**62, 1, 1)),
    ("dilation_cols_2_62_in_place", "float32", (1, 3, 40, 20), (1, 2, 20, 1),
     (1, 3, 40, 20), (1, 1, 1, 1), "SAME", "NHWC", (1, 1, 2**62, 1)),
    ("stride_cols_2_61_two_out_cols", "float32", (1, 2, 3, 17),
     (1, 3, 17, 1), (1, 2, 2, 17), (1, 1, 2**61, 1),
     [[0, 0], [0, 0], [0, 2**61], [0, 0]], "NHWC", (1, 1, 1, 1)),
]


class OverflowTest(parameterized.TestCase):
  """The fuzzer's UBSan findings (also in tests/fuzz_corpus.json, which
  `make sanitize` replays under UBSan): right answers, no overflow."""

  @parameterized.named_parameters(
      (f"{c[0]}_{isa}", c, isa) for c in OVERFLOW_CASES for isa in ISA_LEVELS)
  def test_huge_steps(self, spec, isa):
    if isa not in supported_levels():
      self.skipTest(f"this CPU has no {isa}")
    _, dtype, x_shape, filt, dy_shape, strides, padding, layout, dil = spec
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(testing.numpy_dtype(dtype))
    dy = rng.standard_normal(dy_shape).astype(testing.numpy_dtype(dtype))
    lib = library()
    with environment(DWOP_CPU_ISA=isa):
      got = lib.filter_grad(x, filt, dy, strides, padding, layout, dil,
                            num_threads=2).astype(np.float64)
    want = lib.filter_grad(x, filt, dy, strides, padding, layout, dil,
                           backend="reference").astype(np.float64)
    terms = int(np.prod(dy_shape)) // (filt[2] * filt[3])
    testing.assert_close(got, want,
                         tolerance.atol(dtype, x, dy, terms,
                                        tolerance.TWO_RESULTS),
                         "dwop vs the reference backend")


class IsaSelectionTest(parameterized.TestCase):

  def test_default_is_the_best_level(self):
    with environment(DWOP_CPU_ISA=None):
      best = cpu_isa()
    self.assertIn(best, ISA_LEVELS)
    with environment(DWOP_CPU_ISA="auto"):
      self.assertEqual(cpu_isa(), best)

  @parameterized.parameters(*ISA_LEVELS)
  def test_each_level_can_be_forced(self, isa):
    if isa not in supported_levels():
      self.skipTest(f"this CPU has no {isa}")
    with environment(DWOP_CPU_ISA=isa):
      self.assertEqual(cpu_isa(), isa)

  def test_unsupported_level_degrades_to_the_best(self):
    best = supported_levels()[0]
    for isa in ISA_LEVELS[:ISA_LEVELS.index(best)]:
      with environment(DWOP_CPU_ISA=isa):
        self.assertEqual(cpu_isa(), best)

  def test_unknown_value_is_ignored(self):
    with environment(DWOP_CPU_ISA="sse9"):
      self.assertEqual(cpu_isa(), supported_levels()[0])


class PlanKnobTest(absltest.TestCase):

  def test_unknown_key_is_reported_and_ignored(self):
    # In a child: the warning is printed once per process, on fd 2.
    proc = testing.run_python("""
        import os
        import numpy as np
        import cabi
        lib, rng = cabi.Library(), np.random.default_rng(0)
        x = rng.standard_normal([2, 9, 9, 20]).astype(np.float32)
        dy = rng.standard_normal([2, 9, 9, 20]).astype(np.float32)
        def run(plan):
          os.environ["DWOP_CPU_PLAN"] = plan
          return lib.filter_grad(x, [3, 3, 20, 1], dy, [1, 1, 1, 1], "SAME")
        same = run("pieces=2").tobytes() == run("pieces=2,bogus=7").tobytes()
        print("SAME" if same else "DIFFERENT")
        """)
    self.assertEqual(proc.returncode, 0, proc.stderr)
    self.assertEqual(proc.stdout.strip(), "SAME")
    self.assertIn("ignoring unknown DWOP_CPU_PLAN key 'bogus'", proc.stderr)


if __name__ == "__main__":
  absltest.main()
