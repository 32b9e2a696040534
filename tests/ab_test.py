"""python/ab.py, the A/B timing tool: its arguments, its table, its DIFF mark
and the environment it leaves behind (through the C ABI, no TensorFlow)."""

import argparse
import contextlib
import io
import os

from absl.testing import absltest

import ab


def _run(*argv):
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    ab.main(["--rounds", "1", "--seconds", "0", "--threads", "2", *argv])
  return out.getvalue().splitlines()


class ParseTest(absltest.TestCase):

  def test_benchmark_case(self):
    case = ab.parse_case("mnv2_7x7x960_k3")
    self.assertEqual(case.input, (32, 7, 7, 960))
    self.assertEqual(case.dtype, "float32")

  def test_shape_with_stride_dilation_and_dtype(self):
    case = ab.parse_case("2x9x10x32x5x2x3:bfloat16")
    self.assertEqual(case.input, (2, 9, 10, 32))
    self.assertEqual(case.filter, (5, 5, 32, 1))
    self.assertEqual(case.strides, (2, 2))
    self.assertEqual(case.dilations, (3, 3))
    self.assertEqual(case.dtype, "bfloat16")

  def test_bad_case(self):
    with self.assertRaisesRegex(argparse.ArgumentTypeError, "2x9x10"):
      ab.parse_case("2x9x10")

  def test_variants(self):
    self.assertEqual(ab.parse_variant("@"), (None, {}))
    self.assertEqual(
        ab.parse_variant("/x/lib.so@DWOP_CPU_PLAN=pieces=2,DWOP_CPU_ISA=avx2"),
        ("/x/lib.so", {"DWOP_CPU_PLAN": "pieces=2", "DWOP_CPU_ISA": "avx2"}))
    with self.assertRaisesRegex(argparse.ArgumentTypeError, "KEY=VALUE"):
      ab.parse_variant("@DWOP_CPU_ISA")


class RunTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.saved = os.environ.get("DWOP_CPU_PLAN")
    os.environ["DWOP_CPU_PLAN"] = "band=2"  # the run must put it back

  def tearDown(self):
    if self.saved is None:
      os.environ.pop("DWOP_CPU_PLAN")
    else:
      os.environ["DWOP_CPU_PLAN"] = self.saved
    super().tearDown()

  def test_one_row_per_case_and_op(self):
    lines = _run("--variants", "@;@", "4x9x9x16x3", "4x9x9x16x3:float64")
    self.assertLen(lines, 6)
    for line, op in zip(lines, ab.OPS * 2):
      self.assertIn(op, line)
      self.assertNotIn("DIFF", line)  # the same kernel, the same bits
    self.assertIn(":float64", lines[3])

  def test_diff_marks_another_summation_order(self):
    # One reduction piece against 8: the filter gradient's partial sums add
    # up in another order, so the bits differ; the forward's do not.
    lines = _run("--ops", "forward,filter_grad", "--variants",
                 "@DWOP_CPU_PLAN=pieces=1;@DWOP_CPU_PLAN=pieces=8",
                 "8x16x16x16x3")
    self.assertNotIn("DIFF", lines[0])
    self.assertIn("DIFF", lines[1])
    self.assertEqual(os.environ["DWOP_CPU_PLAN"], "band=2")  # restored


if __name__ == "__main__":
  absltest.main()
