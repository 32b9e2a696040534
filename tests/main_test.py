"""`python -m dwop` (dwop/__main__.py): the report, the self-check table,
and its exit status."""

import contextlib
import io
from unittest import mock

from absl.testing import absltest
import tensorflow as tf

import dwop
from dwop import __main__ as dwop_main
import testing


class SelfCheckTest(absltest.TestCase):

  def run_check(self, table):
    output = io.StringIO()
    with mock.patch.object(dwop_main, "checks", return_value=table):
      with contextlib.redirect_stdout(output):
        failures = dwop_main.self_check(tf, ["/CPU:0"])
    return failures, output.getvalue()

  def test_every_exported_op_agrees_with_tf_nn(self):
    failures, output = self.run_check(dwop_main.checks(tf))
    self.assertEqual(failures, 0, output)
    self.assertRegex(output, r"depthwise_conv2d_backprop_filter +/CPU:0: ok")

  def test_table_covers_the_exported_ops(self):
    names = {name for name, _, _, _ in dwop_main.checks(tf)}
    self.assertLessEqual(
        {"depthwise_conv2d_backprop_filter", "depthwise_conv2d_native",
         "depthwise_conv2d_backprop_input"}, names)
    for name, ours, _, _ in dwop_main.checks(tf):
      self.assertIs(ours, getattr(dwop, name, None), name)

  def test_missing_op_is_skipped(self):
    table = [("not_yet", None, tf.nn.depthwise_conv2d_backprop_filter,
              dwop_main._filter_grad_args)]  # pylint: disable=protected-access
    failures, output = self.run_check(table)
    self.assertEqual(failures, 0)
    self.assertIn("not_yet", output)
    self.assertIn("skipped", output)

  def test_disagreement_is_a_failure(self):
    wrong = lambda **args: tf.nn.depthwise_conv2d_backprop_filter(**args) + 1
    table = [("depthwise_conv2d_backprop_filter",
              dwop.depthwise_conv2d_backprop_filter, wrong,
              dwop_main._filter_grad_args)]  # pylint: disable=protected-access
    failures, output = self.run_check(table)
    self.assertEqual(failures, 1)
    self.assertIn("FAILED 8 of 8", output)
    self.assertIn("relative error", output)


class CommandTest(absltest.TestCase):
  """The command in a fresh interpreter."""

  def run_module(self, *args, env=None):
    return testing.run_python(
        "import sys, runpy; sys.argv = ['dwop'] + %r; "
        "runpy.run_module('dwop', run_name='__main__')" % (list(args),),
        env=env, timeout=300)

  def test_report_and_self_check(self):
    result = self.run_module()
    self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
    for label in ("dwop", "op library", "built against TensorFlow",
                  "running TensorFlow", "CPU kernels", "CPU threads",
                  "CUDA kernels", "GPU visible"):
      self.assertRegex(result.stdout, rf"(?m)^{label}: +\S")
    self.assertRegex(
        result.stdout,
        rf"running TensorFlow: +{tf.__version__.replace('.', '[.]')}")
    self.assertRegex(result.stdout, r"CPU kernels: +(avx512|avx2|generic)")
    self.assertIn("all checks passed", result.stdout)

  def test_forced_isa_is_reported(self):
    result = self.run_module("--no-check", env={"DWOP_CPU_ISA": "generic"})
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertRegex(result.stdout,
                     r"CPU kernels: +generic \(DWOP_CPU_ISA=generic\)")
    self.assertNotIn("self-check", result.stdout)

  def test_missing_library_fails_with_advice(self):
    result = self.run_module(env={"DWOP_LIBRARY": "/nonexistent/lib.so"})
    self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
    self.assertIn("was not found", result.stdout)
    self.assertIn("--no-build-isolation --force-reinstall", result.stdout)

  def test_help(self):
    result = self.run_module("--help")
    self.assertEqual(result.returncode, 0, result.stderr)
    self.assertIn("self-check", result.stdout)
    self.assertIn("Exit status", result.stdout)


if __name__ == "__main__":
  absltest.main()
