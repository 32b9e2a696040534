"""TensorFlow 2.21's defects in its depthwise convolution ops, documented.

Each test asserts TensorFlow's wrong behaviour and that dwop is right on the
same input. "native" is TensorFlow without oneDNN (TF_ENABLE_ONEDNN_OPTS=0,
which only takes effect when TensorFlow starts, so those measurements run in
one child process); "oneDNN" is TensorFlow's default on x86 CPUs, this
process. When a defect does not reproduce the test is skipped with the
measurement, so a TensorFlow upgrade that fixes it shows up as a skip.

The measurements are module-level functions returning plain data, so the
child process and this one run the same code.
"""

import functools
import warnings

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import cases
import conv_op_test
import dwop
import testing
import tf_paths

_DILATED = "k3_d2_same_nhwc_float32"  # SAME: both results have one shape


def _errors(case, x, dy, got):
  """max |got - oracle| and the case's tolerance."""
  return (testing.max_error(got, testing.oracle(case, x, dy)),
          testing.tolerance(case.dtype, x, dy, case))


def measure_dilations():
  """TensorFlow's op with dilations 2 against itself undilated."""
  case = cases.by_name(_DILATED)
  x, dy = case.random_inputs()
  dilated = tf_paths.tf_direct(case, x, dy)
  undilated = tf_paths.tf_direct(case.replace(dilations=(1, 1)), x, dy)
  tf_error, tol = _errors(case, x, dy, dilated)
  return {"dilated_minus_undilated": testing.max_error(dilated, undilated),
          "tf_error": tf_error, "tolerance": tol}


def measure_empty(dtype, attempts=10):
  """TensorFlow's op on an empty out_backprop, `attempts` times.

  Before each call a tensor of the output's size is filled with 1.5 and
  freed, so that memory the allocator hands out again holds something other
  than zeros. Counts the calls whose output had any non-zero element.
  """
  case = cases.Case("empty_batch", (0, 5, 5, 64), (3, 3, 64, 1), dtype=dtype)
  x, dy = case.random_inputs()
  runs, values = 0, set()
  for _ in range(attempts):
    junk = tf.fill([int(np.prod(case.filter))], tf.constant(1.5, dtype))
    junk = junk + tf.constant(1.0, dtype)
    del junk
    out = np.asarray(tf_paths.tf_direct(case, x, dy), np.float64)
    bad = out[out != 0]  # NaN included
    runs += bool(bad.size)
    values.update(float(v) for v in bad[:4])
  dwop_nonzero = sum(
      int(np.count_nonzero(np.asarray(tf_paths.dwop_grad(case, x, dy),
                                      np.float64)))
      for _ in range(attempts))
  return {"runs_with_garbage": runs, "attempts": attempts,
          "values": sorted(values, key=str)[:8], "dwop_nonzero": dwop_nonzero}


def _raised(fn):
  """The exception fn raises, as [type name, message], or None."""
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return [type(e).__name__, str(e)]
  return None


_NCHW = "k3_same_nchw_float32"
_UNEQUAL_STRIDES = "k3_s1x2_same_nhwc_float32"


def measure_rejection(case_name):
  """What TensorFlow's op raises on a case, or None."""
  case = cases.by_name(case_name)
  return _raised(lambda: tf_paths.tf_direct(case, *case.random_inputs()))


def half_accuracy_case(dtype):
  """8x64x64x16, 3x3 SAME, standard normal data rounded to dtype."""
  case = cases.Case("half_accuracy", (8, 64, 64, 16), (3, 3, 16, 1),
                    dtype=dtype)
  rng = np.random.default_rng(1)
  np_dtype = testing.numpy_dtype(dtype)
  x, dy = (rng.standard_normal(s).astype(np_dtype).astype(np.float64)
           for s in (case.input_shape, case.out_backprop_shape))
  return case, x, dy


def measure_half(dtype):
  """Error of TensorFlow's op relative to max |gradient|."""
  case, x, dy = half_accuracy_case(dtype)
  want = testing.oracle(case, x, dy)
  scale = float(np.abs(want).max())
  return testing.max_error(tf_paths.tf_direct(case, x, dy), want) / scale


# --- The forward (DepthwiseConv2dNative) and input gradient
# (DepthwiseConv2dNativeBackpropInput).

_DILATED_S1 = "k3_d2_same_nhwc_float32"


def measure_input_grad_dilations():
  """TensorFlow's backprop-input op with dilations 2 against itself
  undilated (SAME: both have the same shapes)."""
  case = cases.by_name(_DILATED_S1)
  _, dy = case.random_inputs()
  w = conv_op_test.random_filter(case)

  def tf_op(c):
    return tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
        input_sizes=c.input_shape, filter=tf.constant(w, tf.float32),
        out_backprop=tf.constant(dy, tf.float32), strides=c.tf_strides,
        padding="SAME", dilations=c.tf_dilations).numpy()

  dilated = tf_op(case)
  undilated = tf_op(case.replace(dilations=(1, 1)))
  want = conv_op_test.oracle_input_grad(case, w, dy)
  return {"dilated_minus_undilated": testing.max_error(dilated, undilated),
          "tf_error": testing.max_error(dilated, want)}


def measure_forward_rejection(case_name):
  """What TensorFlow's forward op raises on a case, or None."""
  case = cases.by_name(case_name)
  x, _ = case.random_inputs()
  w = conv_op_test.random_filter(case)
  return _raised(lambda: tf.raw_ops.DepthwiseConv2dNative(
      input=tf.constant(x, tf.float32), filter=tf.constant(w, tf.float32),
      **conv_op_test._raw_attrs(case)))  # pylint: disable=protected-access


def forward_half_case(dtype):
  """8x32x32x16, 7x7 SAME, standard normal data rounded to dtype."""
  case = cases.Case("forward_half", (8, 32, 32, 16), (7, 7, 16, 1),
                    dtype=dtype)
  rng = np.random.default_rng(3)
  np_dtype = testing.numpy_dtype(dtype)
  x = rng.standard_normal(case.input_shape).astype(np_dtype).astype(
      np.float64)
  w = rng.standard_normal(case.filter).astype(np_dtype).astype(np.float64)
  return case, x, w


def measure_forward_half(dtype):
  """Error of TensorFlow's forward relative to max |output|."""
  case, x, w = forward_half_case(dtype)
  want = conv_op_test.oracle_forward(case, x, w)
  got = tf.raw_ops.DepthwiseConv2dNative(
      input=tf_paths.tensor(x, dtype), filter=tf_paths.tensor(w, dtype),
      strides=[1, 1, 1, 1], padding="SAME").numpy()
  return testing.max_error(got, want) / float(np.abs(want).max())


def native_measurements():
  """Everything measured in the child without oneDNN."""
  return {
      "input_grad_dilations": measure_input_grad_dilations(),
      "forward_" + _DILATED_S1: measure_forward_rejection(_DILATED_S1),
      "forward_" + _NCHW: measure_forward_rejection(_NCHW),
      "forward_" + _UNEQUAL_STRIDES: measure_forward_rejection(
          _UNEQUAL_STRIDES),
      "forward_half_float16": measure_forward_half("float16"),
      "forward_half_bfloat16": measure_forward_half("bfloat16"),
      "onednn": tf_paths.onednn_enabled(),
      "dilations": measure_dilations(),
      "empty_float32": measure_empty("float32"),
      "empty_float64": measure_empty("float64"),
      _NCHW: measure_rejection(_NCHW),
      _UNEQUAL_STRIDES: measure_rejection(_UNEQUAL_STRIDES),
      "half_float16": measure_half("float16"),
      "half_bfloat16": measure_half("bfloat16"),
  }


@functools.lru_cache(maxsize=None)
def _native():
  result = testing.run_python_json(
      "import tf_defects_test\n"
      "report(tf_defects_test.native_measurements())\n",
      env=testing.NATIVE_TF)
  assert not result["onednn"], "the child ran with oneDNN"
  return result


class DefectTestCase(parameterized.TestCase):

  def assertDefect(self, reproduced, measured):  # pylint: disable=invalid-name
    """Skips, with what was measured, when TensorFlow behaved correctly."""
    if not reproduced:
      self.skipTest(f"TensorFlow defect did not reproduce; measured {measured}")

  def requireOnednn(self):  # pylint: disable=invalid-name
    if not tf_paths.onednn_enabled():
      self.skipTest("this process runs TensorFlow without oneDNN")

  def assertDwopMatchesOracle(self, case_name):  # pylint: disable=invalid-name
    case = cases.by_name(case_name)
    x, dy = case.random_inputs()
    error, tol = _errors(case, x, dy, tf_paths.dwop_grad(case, x, dy))
    self.assertLessEqual(error, tol)


class DilationsTest(DefectTestCase):
  """TensorFlow's op ignores `dilations` on CPU: it returns the undilated
  gradient (measured, with and without oneDNN: bitwise identical to the
  undilated result, off from the truth by 12.5 on k3_d2_same where the
  float32 tolerance is 1.2e-4). dwop honours them."""

  def check(self, measured):
    self.assertDwopMatchesOracle(_DILATED)
    self.assertDefect(
        measured["dilated_minus_undilated"] == 0 and
        measured["tf_error"] > measured["tolerance"], measured)

  def test_ignored_with_onednn(self):
    self.requireOnednn()
    self.check(measure_dilations())

  def test_ignored_natively(self):
    self.check(_native()["dilations"])


class EmptyOutBackpropTest(DefectTestCase):
  """With an empty out_backprop TensorFlow's native kernel returns before it
  writes its output: uninitialised memory. Measured: garbage in 10 of 10
  float32 and float64 calls natively (values such as -1.2e-38, 4.6e-41,
  4.7e-310, and 1.5, the contents of the tensor freed just before: an
  information leak), and in 7 of 10 float64 calls with oneDNN on, since the
  native kernel serves float64 then too. dwop returns zeros.

  Garbage is not guaranteed (fresh pages are zero), so the defect counts as
  reproduced when any of 10 calls returns a non-zero element; dwop must give
  exact zeros in every call.
  """

  def check(self, measured):
    self.assertEqual(measured["dwop_nonzero"], 0)
    self.assertDefect(measured["runs_with_garbage"] > 0, measured)

  @parameterized.named_parameters(("float32", "float32"),
                                  ("float64", "float64"))
  def test_garbage_natively(self, dtype):
    self.check(_native()[f"empty_{dtype}"])

  def test_garbage_in_float64_with_onednn(self):
    self.requireOnednn()
    self.check(measure_empty("float64"))

  def test_onednn_float32_returns_zeros(self):
    self.requireOnednn()
    self.assertEqual(measure_empty("float32")["runs_with_garbage"], 0)


class RejectionTest(DefectTestCase):
  """TensorFlow's native kernel rejects valid problems that dwop computes."""

  @parameterized.named_parameters(
      ("nchw", _NCHW, "UnimplementedError", "only supported for NHWC"),
      # oneDNN accepts unequal strides; the native kernel does not.
      ("unequal_strides", _UNEQUAL_STRIDES, "InvalidArgumentError",
       "equal length strides"))
  def test_rejected_natively(self, case_name, error_type, text):
    self.assertDwopMatchesOracle(case_name)
    raised = _native()[case_name]
    self.assertDefect(raised is not None, raised)
    self.assertEqual(raised[0], error_type)
    self.assertIn(text, raised[1])


class HalfAccumulationTest(DefectTestCase):
  """TensorFlow's native kernel accumulates half and bfloat16 in half and
  bfloat16. On 8x64x64x16, 3x3 SAME, standard normal data, the error
  relative to max |gradient| measured 1.0e-2 (float16) and 1.2e-1 (bfloat16);
  dwop (float32 accumulation, one rounding at the end) 3.7e-4 and 2.6e-3,
  within one unit roundoff of the output type. (oneDNN accumulates in float32
  too: its errors equal dwop's.)"""

  @parameterized.named_parameters(("float16", "float16", 2.0**-11),
                                  ("bfloat16", "bfloat16", 2.0**-8))
  def test_accumulated_in_half_natively(self, dtype, unit_roundoff):
    case, x, dy = half_accuracy_case(dtype)
    want = testing.oracle(case, x, dy)
    dwop_error = (testing.max_error(tf_paths.dwop_grad(case, x, dy), want) /
                  float(np.abs(want).max()))
    # One rounding of the float32 sum (whose own error is ~1e-6).
    self.assertLessEqual(dwop_error, unit_roundoff * 1.01)
    tf_error = _native()[f"half_{dtype}"]
    self.assertDefect(tf_error > 10 * dwop_error,
                      {"tf_error": tf_error, "dwop_error": dwop_error})


_RANK3_CHILD = """
import sys
import tensorflow as tf
x = tf.ones([9, 9, 4])
print("calling TensorFlow", flush=True)
tf.nn.depthwise_conv2d_backprop_filter(x, [3, 3, 4, 1], x, [1, 1, 1, 1],
                                       "SAME")
print("TensorFlow returned", flush=True)
"""


class OnednnTest(DefectTestCase):
  """oneDNN's kernel (TensorFlow's default on x86) turns bad shapes into a
  process abort or an opaque error."""

  def test_rank3_input_aborts_the_process(self):
    x = tf.ones([9, 9, 4])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"input must be 4-dimensional.*rank 3"):
      dwop.depthwise_conv2d_backprop_filter(x, [3, 3, 4, 1], x, [1, 1, 1, 1],
                                            "SAME")
    proc = testing.run_python(_RANK3_CHILD, env=testing.ONEDNN_TF)
    self.assertIn("calling TensorFlow", proc.stdout, proc.stderr[-2000:])
    self.assertDefect(proc.returncode != 0 and
                      "TensorFlow returned" not in proc.stdout,
                      {"returncode": proc.returncode})
    # SIGABRT from a failed CHECK in tensor_format.h.
    self.assertEqual(proc.returncode, -6, proc.stderr[-2000:])
    self.assertIn("Check failed", proc.stderr)

  def test_depth_mismatch_gives_opaque_aborted_error(self):
    self.requireOnednn()
    x, dy = tf.ones([2, 9, 9, 4]), tf.ones([2, 9, 9, 5])
    raised = _raised(lambda: tf.nn.depthwise_conv2d_backprop_filter(
        x, [3, 3, 4, 1], dy, [1, 1, 1, 1], "SAME"))
    self.assertDefect(raised is not None and raised[0] == "AbortedError",
                      raised)
    self.assertIn("could not create a primitive descriptor", raised[1])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"out_backprop depth must be .* = 4, but got "
                                r"5"):
      dwop.depthwise_conv2d_backprop_filter(x, [3, 3, 4, 1], dy, [1, 1, 1, 1],
                                            "SAME")


class DepthwiseConv2dTest(DefectTestCase):
  """tf.nn.depthwise_conv2d with strides > 1 and dilations > 1 only warns
  and computes a wrong-sized convolution (5x5 instead of 6x6 for 11x11 SAME,
  stride 2, rate 2), so its autodiff cannot serve as the reference for such
  cases (tests/tf_paths.py uses the unit-stride path instead)."""

  def test_stride_and_dilation_give_the_wrong_shape(self):
    case = cases.Case("k3_s2_d2", (1, 11, 11, 1), (3, 3, 1, 1),
                      strides=(2, 2), dilations=(2, 2))
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      y = tf.nn.depthwise_conv2d(tf.ones(case.input), tf.ones(case.filter),
                                 case.tf_strides, "SAME",
                                 dilations=case.dilations)
    self.assertEqual(case.out_backprop_shape, (1, 6, 6, 1))
    self.assertDefect(tuple(y.shape) != case.out_backprop_shape, y.shape)
    x, dy = case.random_inputs()
    error, tol = _errors(case, x, dy, tf_paths.dwop_grad(case, x, dy))
    self.assertLessEqual(error, tol)


class InputGradDilationsTest(DefectTestCase):
  """TensorFlow's DepthwiseConv2dNativeBackpropInput ignores `dilations` on
  CPU, with and without oneDNN: it returns the undilated input gradient.
  dwop's input gradient honours them."""

  def check(self, measured):
    case = cases.by_name(_DILATED_S1)
    conv_op_test.check_input_grad(case)
    self.assertDefect(measured["dilated_minus_undilated"] == 0, measured)
    self.assertGreater(measured["tf_error"], 1.0)

  def test_ignored_with_onednn(self):
    self.requireOnednn()
    self.check(measure_input_grad_dilations())

  def test_ignored_natively(self):
    self.check(_native()["input_grad_dilations"])


class ForwardRejectionTest(DefectTestCase):
  """TensorFlow's native forward refuses valid problems on CPU that dwop
  computes: dilations and NCHW (Unimplemented), unequal strides."""

  @parameterized.named_parameters(
      ("dilations", _DILATED_S1, "UnimplementedError", ""),
      ("nchw", _NCHW, "UnimplementedError", "NHWC"),
      ("unequal_strides", _UNEQUAL_STRIDES, "InvalidArgumentError",
       "strides"))
  def test_rejected_natively(self, case_name, error_type, text):
    conv_op_test.check_forward(cases.by_name(case_name))
    raised = _native()["forward_" + case_name]
    self.assertDefect(raised is not None, raised)
    self.assertEqual(raised[0], error_type, raised)
    self.assertIn(text, raised[1])


class ForwardHalfAccumulationTest(DefectTestCase):
  """TensorFlow's native forward accumulates half and bfloat16 in their own
  precision (7x7 SAME, standard normal data); dwop accumulates in float32
  and rounds once."""

  @parameterized.named_parameters(("float16", "float16", 2.0**-11),
                                  ("bfloat16", "bfloat16", 2.0**-8))
  def test_accumulated_in_half_natively(self, dtype, unit_roundoff):
    case, x, w = forward_half_case(dtype)
    want = conv_op_test.oracle_forward(case, x, w)
    got = conv_op_test.dwop_forward(case, x, w)
    dwop_error = testing.max_error(got, want) / float(np.abs(want).max())
    self.assertLessEqual(dwop_error, unit_roundoff * 1.01)
    tf_error = _native()[f"forward_half_{dtype}"]
    self.assertDefect(tf_error > 2 * dwop_error,
                      {"tf_error": tf_error, "dwop_error": dwop_error})


if __name__ == "__main__":
  absltest.main()
