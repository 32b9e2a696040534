"""The benchmark's pure functions (python/bench_model.py and bench.py's
helpers), without TensorFlow: the work model against brute-force counts, the
per-case rows, the summary statistics and the Markdown rendering."""

import itertools
import math
import os
import subprocess
import sys

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

import bench
import bench_model as model
import cases
import reference

Case = cases.Case


def _brute_force_flops(case):
  """2*N*C*M times the (output, tap) pairs whose input is inside, counted
  with nested loops over every output position and tap."""
  n, h, w, c = case.input
  kh_size, kw_size, _, m = case.filter
  geometry = []
  for size, k, stride, dilation, pad in (
      (h, kh_size, case.strides[0], case.dilations[0],
       case.padding if isinstance(case.padding, str) else case.padding[0]),
      (w, kw_size, case.strides[1], case.dilations[1],
       case.padding if isinstance(case.padding, str) else case.padding[1])):
    geometry.append(reference.output_size(size, k, stride, dilation, pad))
  (oh_size, top), (ow_size, left) = geometry
  inside = 0
  for oh, ow, kh, kw in itertools.product(range(oh_size), range(ow_size),
                                          range(kh_size), range(kw_size)):
    row = oh * case.strides[0] + kh * case.dilations[0] - top
    col = ow * case.strides[1] + kw * case.dilations[1] - left
    inside += 0 <= row < h and 0 <= col < w
  return 2 * n * c * m * inside


def _ones_forward_flops(case):
  """The same count from the float64 oracle: a forward of ones over ones
  gives, per output, the number of taps inside the image."""
  n, h, w, c = case.input
  single = case.replace(input=(1, h, w, 1),
                        filter=case.filter[:2] + (1, 1))
  y = reference.depthwise_conv2d(
      np.ones(single.input_shape), np.ones(single.filter), single.tf_strides,
      single.tf_padding, single.data_format, single.tf_dilations)
  return int(2 * n * c * case.filter[3] * y.sum())


_GEOMETRIES = [
    Case("k13_on_8x8_same", (2, 8, 8, 3), (13, 13, 3, 1)),
    Case("k7_s2_d2_same", (1, 15, 12, 2), (7, 5, 2, 2), (2, 3), "SAME",
         (2, 2)),
    Case("k5_explicit_wide", (1, 6, 7, 2), (5, 4, 2, 1), (1, 2),
         ((6, 1), (0, 5)), (1, 1)),
    Case("k3_valid_nchw_m3", (2, 9, 8, 4), (3, 3, 4, 3), (1, 1), "VALID",
         (1, 1), "NCHW"),
    Case("k64x1_valid", (1, 70, 5, 2), (64, 1, 2, 2), padding="VALID"),
    Case("k3_stride_over_input", (1, 3, 3, 2), (3, 3, 2, 1), (5, 5)),
]


class WorkModelTest(parameterized.TestCase):

  @parameterized.named_parameters((c.name, c) for c in _GEOMETRIES)
  def test_useful_flops_is_the_brute_force_count(self, case):
    want = _brute_force_flops(case)
    self.assertEqual(model.useful_flops(case), want)
    self.assertEqual(_ones_forward_flops(case), want)
    self.assertLessEqual(want, model.nominal_flops(case))

  def test_padded_large_filter_costs_a_fraction(self):
    case = _GEOMETRIES[0]
    # 13 taps over 8 rows, SAME: each output row sees 5..8 rows inside.
    self.assertLess(model.useful_flops(case),
                    0.5 * model.nominal_flops(case))
    replk = cases.by_name("replk_14x14x512_k27", cases.BENCH)
    ratio = model.useful_flops(replk) / model.nominal_flops(replk)
    # Each of the 14 output rows sees 14 of the 27 taps: 27% (DESIGN.md).
    self.assertAlmostEqual(ratio, (14 / 27) ** 2, places=12)
    dense = cases.by_name("mnv2_7x7x960_k3", cases.BENCH)
    self.assertEqual(model.useful_flops(dense),
                     2 * 32 * 960 * (7 * 3 - 2) ** 2)

  def test_bytes(self):
    case = cases.by_name("mnv2_112x112x96_k3s2", cases.BENCH)
    x, f, y = 32 * 112 * 112 * 96, 3 * 3 * 96, 32 * 56 * 56 * 96
    self.assertEqual(model.op_bytes(case), 4 * (x + f + y))
    self.assertEqual(model.op_bytes(case.replace(dtype="bfloat16")),
                     2 * (x + f + y))
    nchw = case.replace(data_format="NCHW")
    self.assertEqual(model.op_bytes(nchw), model.op_bytes(case))

  def test_roofline_takes_the_binding_limit(self):
    self.assertAlmostEqual(model.roofline_ms(1e9, 1e6, 1e9, 1e11), 10.0)
    self.assertAlmostEqual(model.roofline_ms(1e6, 1e9, 1e9, 1e11), 1000.0)

  def test_relative_error(self):
    oracle = np.array([[1.0, -4.0], [2.0, 0.0]])
    self.assertEqual(bench.relative_error(oracle.copy(), oracle), 0.0)
    self.assertAlmostEqual(bench.relative_error(oracle + 0.5, oracle), 0.125)
    with_nan = oracle.copy()
    with_nan[1, 1] = np.nan  # an element the kernel did not write
    self.assertEqual(bench.relative_error(with_nan, oracle), math.inf)
    self.assertEqual(bench.relative_error(oracle.T[:1], oracle), math.inf)

  def test_parse_ops(self):
    self.assertEqual(bench.parse_ops("filter_grad,forward"),
                     ["forward", "filter_grad"])
    with self.assertRaises(Exception):
      bench.parse_ops("forward,backward")

  def test_select_cases(self):
    quick = bench.select_cases(True, None)
    self.assertEqual({c.name for c in quick}, set(bench.QUICK_CASES))
    self.assertEqual([c.name for c in bench.select_cases(False, "k31$")],
                     ["replk_56x56x128_k31"])


def _impl(ms, err=0.0):
  return {"ms": ms, "max_rel_error": err, "samples": [ms]}


_ERROR = {"error": "InvalidArgumentError: unsupported"}


def _fake_rows():
  """Three cases with made-up times: a 3x3, a 7x7 and a 31x31 layer."""
  small = cases.by_name("mnv2_7x7x960_k3", cases.BENCH)  # not large
  k7 = cases.by_name("convnext_56x56x96_k7", cases.BENCH)
  k31 = cases.by_name("replk_56x56x128_k31", cases.BENCH)
  bandwidth, peak = 1e10, 1e11
  rows = []
  # small: TF with oneDNN is faster in every op, dwop slower in forward.
  rows.append(model.case_row(small, {
      op: {"dwop": _impl(2.0 if op == "forward" else 1.0),
           "tf_onednn": _impl(1.0), "tf_native": _impl(3.0),
           "dwop_1t": _impl(2.0), "dwop_2t": _impl(1.0)}
      for op in model.OPS}, bandwidth, peak, extra_mb=1.5))
  # k7: native TF refuses the forward; oneDNN's input gradient is wrong.
  rows.append(model.case_row(k7, {
      "forward": {"dwop": _impl(1.0), "tf_onednn": _impl(4.0),
                  "tf_native": _ERROR, "dwop_1t": _impl(1.8),
                  "dwop_2t": _impl(1.0)},
      "input_grad": {"dwop": _impl(1.0), "tf_onednn": _impl(2.0, 0.5),
                     "tf_native": _impl(8.0), "dwop_1t": _impl(1.5),
                     "dwop_2t": _impl(1.0)},
      "filter_grad": {"dwop": _impl(1.0), "tf_onednn": _impl(16.0),
                      "tf_native": _impl(9.0), "dwop_1t": _impl(2.0),
                      "dwop_2t": _impl(1.0)},
  }, bandwidth, peak, extra_mb=2.5))
  # k31: both TF settings refuse the input gradient; no C ABI timings.
  rows.append(model.case_row(k31, {
      "forward": {"dwop": _impl(10.0), "tf_onednn": _impl(100.0),
                  "tf_native": _impl(1000.0)},
      "input_grad": {"dwop": _impl(10.0), "tf_onednn": _ERROR,
                     "tf_native": _ERROR},
      "filter_grad": {"dwop": _impl(10.0, 2e-2), "tf_onednn": _impl(1000.0),
                      "tf_native": _impl(250.0)},
  }, bandwidth, peak))
  return rows, (bandwidth, peak)


class RowsAndSummaryTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.rows, (self.bandwidth, self.peak) = _fake_rows()
    self.summary = model.summary(self.rows)

  def test_row(self):
    small = self.rows[0]
    case = cases.by_name(small["case"], cases.BENCH)
    roof = 1e3 * max(model.op_bytes(case) / self.bandwidth,
                     model.useful_flops(case) / self.peak)
    forward = small["ops"]["forward"]
    self.assertAlmostEqual(forward["roofline_ms"], roof)
    self.assertAlmostEqual(forward["roofline_ratio"], 2.0 / roof)
    self.assertEqual(forward["best_tf"], "tf_onednn")
    self.assertAlmostEqual(forward["speedup"], 0.5)
    self.assertAlmostEqual(forward["thread_scaling"], 2.0)
    total = small["ops"]["total"]
    self.assertAlmostEqual(total["dwop_ms"], 4.0)
    self.assertAlmostEqual(total["roofline_ms"], 3 * roof)
    self.assertAlmostEqual(total["thread_scaling"], 2.0)

  def test_total_takes_the_faster_setting_of_the_sums(self):
    k7 = self.rows[1]
    # Per op the best TF is 4 + 2 + 9 = 15 ms, but no one process has it:
    # native refused the forward, so the total is oneDNN's 4 + 2 + 16.
    total = k7["ops"]["total"]
    self.assertEqual(total["best_tf"], "tf_onednn")
    self.assertAlmostEqual(total["best_tf_ms"], 22.0)
    self.assertAlmostEqual(total["speedup"], 22.0 / 3.0)
    self.assertIn("error", total["impls"]["tf_native"])
    # The wrong input gradient makes the oneDNN total wrong too.
    self.assertTrue(model.is_wrong(total["impls"]["tf_onednn"]))
    self.assertEqual(k7["ops"]["filter_grad"]["best_tf"], "tf_native")

  def test_refused_everywhere_has_no_speedup(self):
    k31 = self.rows[2]
    self.assertIsNone(k31["ops"]["input_grad"]["speedup"])
    self.assertIsNone(k31["ops"]["input_grad"]["thread_scaling"])
    self.assertIsNone(k31["ops"]["total"]["speedup"])
    self.assertAlmostEqual(k31["ops"]["total"]["dwop_ms"], 30.0)

  def test_summary(self):
    s = self.summary
    fwd = s["forward"]
    self.assertAlmostEqual(fwd["geomean_speedup"],
                           (0.5 * 4.0 * 10.0) ** (1 / 3))
    self.assertAlmostEqual(fwd["geomean_speedup_k7_plus"], math.sqrt(40.0))
    self.assertAlmostEqual(fwd["min_speedup"], 0.5)
    self.assertEqual(fwd["min_speedup_case"], "mnv2_7x7x960_k3")
    ratios = [r["ops"]["forward"]["roofline_ratio"] for r in self.rows]
    self.assertAlmostEqual(fwd["median_roofline_ratio"], np.median(ratios))
    self.assertAlmostEqual(fwd["worst_roofline_ratio"], max(ratios))
    self.assertEqual(fwd["worst_roofline_case"],
                     self.rows[int(np.argmax(ratios))]["case"])
    # Only the input gradient's two timed cases count.
    self.assertEqual(s["input_grad"]["cases_timed"], 2)
    # A wrong TF result still counts as a time (and is marked).
    self.assertAlmostEqual(s["input_grad"]["geomean_speedup"], math.sqrt(2))
    self.assertAlmostEqual(s["filter_grad_geomean_speedup"],
                           (1.0 * 9.0 * 25.0) ** (1 / 3))
    self.assertAlmostEqual(s["filter_grad"]["max_dwop_rel_error"], 2e-2)
    self.assertEqual(s["max_dwop_extra_mb"], 2.5)
    self.assertAlmostEqual(s["total"]["geomean_speedup"],
                           math.sqrt(3.0 / 4.0 * 22.0 / 3.0))
    self.assertAlmostEqual(s["total"]["geomean_speedup_k7_plus"], 22.0 / 3.0)

  def test_thread_scaling_counts_large_cases_only(self):
    large = [r for r in self.rows if r["flops"] >= model.LARGE_FLOPS]
    self.assertEqual([r["case"] for r in large],
                     ["convnext_56x56x96_k7", "replk_56x56x128_k31"])
    # mnv2_7x7x960 (2T/1T = 2) is small and k31 has no C ABI timings.
    self.assertAlmostEqual(self.summary["forward"]["min_2t_1t_large"], 1.8)
    self.assertAlmostEqual(self.summary["input_grad"]["median_2t_1t_large"],
                           1.5)

  def test_dwop_failures(self):
    self.assertEqual(model.dwop_failures(self.rows),
                     [("replk_56x56x128_k31", "filter_grad",
                       "max relative error 2.00e-02")])

  def test_markdown(self):
    results = {"machine": {"cores": 2, "bandwidth_gbs": 10.0,
                           "peak_gflops": 100.0},
               "rounds": 5, "summary": self.summary, "cases": self.rows}
    text = model.markdown(results)
    for title in ("forward", "input gradient", "filter gradient",
                  "layer total"):
      self.assertIn(f"**{title}**", text)
    table_lines = [row for row in text.splitlines() if row.startswith("| ")]
    # Four tables of a header and three cases, then the summary's header and
    # eight metrics.
    self.assertLen(table_lines, 4 * 4 + 9)
    for line in table_lines:
      self.assertEqual(line.count("|"), line.split("\n")[0].count("|"))
    per_case = [row for row in table_lines
                if row.startswith("| convnext_56x56")]
    self.assertLen(per_case, 4)
    self.assertEqual(per_case[0].count("|"), 10)
    self.assertIn("| error |", per_case[0])           # native forward refused
    self.assertIn("2.00 (wrong)", per_case[1])         # oneDNN input gradient
    self.assertIn("| 22.00 (wrong) |", per_case[3])    # its total
    self.assertIn("| geomean speed-up over best TF | 2.71x | 1.41x | 6.08x "
                  "| 2.35x |", text)
    self.assertIn("| 10.00 | error | error | - | 45.83 |", text)
    self.assertIn("largest extra peak memory (filter gradient, two threads): "
                  "2.5 MB", text)
    self.assertIn("medians of up to 5", text)

  def test_markdown_names_tensorflow_fallbacks(self):
    rows = self.rows
    rows[1]["ops"]["forward"]["impls"]["tf_onednn"]["api"] = (
        "nn.depthwise_conv2d")
    rows[0]["ops"]["input_grad"]["impls"]["tf_native"]["api"] = (
        "gradient of nn.depthwise_conv2d")
    results = {"machine": {"cores": 2, "bandwidth_gbs": 10.0,
                           "peak_gflops": 100.0},
               "rounds": 5, "summary": self.summary, "cases": rows}
    text = model.markdown(results)
    self.assertIn("refused the case: convnext_56x56x96_k7.", text)
    self.assertIn("would ignore the dilations: mnv2_7x7x960_k3.", text)

  def test_text_lines(self):
    lines = model.text_lines(self.rows[1])
    self.assertLen(lines, 4)
    self.assertEqual(len({len(line) for line in lines}), 1)  # aligned columns
    self.assertIn("*", lines[1])
    self.assertIn("err", lines[0])
    self.assertTrue(any("geomean" in line for line in
                        model.summary_text(self.summary)))

  def test_no_tensorflow(self):
    # In a fresh interpreter: other suites of the same run import TensorFlow.
    code = ("import sys, bench, bench_model; "
            "sys.exit('tensorflow' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(bench.__file__))
    self.assertEqual(subprocess.run([sys.executable, "-c", code], env=env,
                                    timeout=120).returncode, 0)


if __name__ == "__main__":
  absltest.main()
