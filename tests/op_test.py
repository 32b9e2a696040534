"""Conformance of dwop's op: every CONFORMANCE case against the float64 oracle
and against TensorFlow wherever TensorFlow is right (tests/tf_paths.py), in
this process (oneDNN on, TensorFlow's default) and in a child process whose
TensorFlow runs its native kernels; a cross-section under tf.function with
every kind of filter_sizes; the shape function.
"""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import cases
import dwop
import testing
import tf_paths


class ConformanceTest(parameterized.TestCase):
  """dwop eagerly, against the oracle and TensorFlow (oneDNN as configured)."""

  @parameterized.named_parameters(cases.named(cases.CONFORMANCE))
  def test_case(self, case):
    x, dy = case.random_inputs()
    got = tf_paths.dwop_grad(case, x, dy)
    tf_result, path = tf_paths.tf_grad(case, x, dy)
    testing.check_case(case, x, dy, got, tf_result, path)


# How filter_sizes reaches the op: eagerly as an int64 tensor, or inside
# tf.function as a constant (static output shape) or as an argument (shape
# known only at run time), int32 or int64.
_VARIANTS = ("eager_int64", "function_const_int32", "function_const_int64",
             "function_arg_int32", "function_arg_int64")


def _variant_params():
  return [(f"{case.name}_{variant}", case, variant)
          for case in cases.cross_section(cases.CONFORMANCE)
          for variant in _VARIANTS]


def _run_variant(case, variant, x, dy):
  """(dwop's gradient, the static shape TensorFlow inferred for it)."""
  sizes_dtype = tf.int64 if variant.endswith("int64") else tf.int32
  x_t = tf_paths.tensor(x, case.dtype)
  dy_t = tf_paths.tensor(dy, case.dtype)
  call = functools.partial(dwop.depthwise_conv2d_backprop_filter,
                           strides=case.tf_strides, padding=case.tf_padding,
                           data_format=case.data_format,
                           dilations=case.tf_dilations)
  sizes = tf.constant(case.filter, sizes_dtype)
  if variant.startswith("eager"):
    out = call(x_t, sizes, dy_t)
    return out.numpy(), tuple(out.shape)
  if variant.startswith("function_const"):
    fn = tf.function(lambda a, b: call(a, tf.constant(case.filter,
                                                      sizes_dtype), b))
    concrete = fn.get_concrete_function(x_t, dy_t)
    return concrete(x_t, dy_t).numpy(), tuple(concrete.output_shapes)
  fn = tf.function(lambda a, s, b: call(a, s, b))
  concrete = fn.get_concrete_function(
      x_t, tf.TensorSpec([4], sizes_dtype), dy_t)
  return concrete(x_t, sizes, dy_t).numpy(), tuple(concrete.output_shapes)


class FilterSizesAndGraphModeTest(parameterized.TestCase):
  """A cross-section of the cases with int64 and non-constant filter_sizes,
  eagerly and under tf.function: same bits as the eager int32 call."""

  @parameterized.named_parameters(_variant_params())
  def test_variant(self, case, variant):
    x, dy = case.random_inputs()
    got, static_shape = _run_variant(case, variant, x, dy)
    known = not variant.startswith("function_arg")
    self.assertEqual(static_shape,
                     tuple(case.filter) if known else (None,) * 4)
    eager = tf_paths.dwop_grad(case, x, dy)
    np.testing.assert_array_equal(got.view(np.uint8), eager.view(np.uint8))
    testing.assert_close(got, testing.oracle(case, x, dy),
                         testing.tolerance(case.dtype, x, dy, case),
                         "dwop vs the float64 oracle")


def _graph_shape(filter_sizes_fn, sizes_spec):
  """The static output shape when filter_sizes = filter_sizes_fn(x, sizes)."""
  x_spec = tf.TensorSpec([2, 9, 9, None], tf.float32)
  fn = tf.function(lambda x, s, dy: dwop.depthwise_conv2d_backprop_filter(
      x, filter_sizes_fn(x, s), dy, [1, 1, 1, 1], "SAME"))
  return fn.get_concrete_function(x_spec, sizes_spec,
                                  x_spec).output_shapes.as_list()


class ShapeFunctionTest(parameterized.TestCase):

  def test_constant_filter_sizes_give_the_static_shape(self):
    shape = _graph_shape(lambda x, s: tf.constant([3, 5, 4, 2]),
                         tf.TensorSpec([4], tf.int32))
    self.assertEqual(shape, [3, 5, 4, 2])

  def test_partially_constant_filter_sizes_give_a_partial_shape(self):
    shape = _graph_shape(
        lambda x, s: tf.concat([[3, 3], tf.shape(x)[3:4], s[3:]], 0),
        tf.TensorSpec([4], tf.int32))
    self.assertEqual(shape, [3, 3, None, None])

  @parameterized.named_parameters(("int32", tf.int32), ("int64", tf.int64))
  def test_unknown_filter_sizes_give_rank_4(self, dtype):
    self.assertEqual(_graph_shape(lambda x, s: s, tf.TensorSpec([4], dtype)),
                     [None] * 4)

  def test_filter_sizes_of_unknown_length_give_rank_4(self):
    self.assertEqual(
        _graph_shape(lambda x, s: s, tf.TensorSpec([None], tf.int32)),
        [None] * 4)

  @parameterized.named_parameters(("length_3", [3]), ("length_5", [5]),
                                  ("rank_2", [2, 2]))
  def test_filter_sizes_of_static_shape_other_than_4_raise(self, shape):
    with self.assertRaisesRegex(ValueError, "filter_sizes"):
      _graph_shape(lambda x, s: s, tf.TensorSpec(shape, tf.int32))

  def test_constant_filter_sizes_of_length_3_raise(self):
    with self.assertRaisesRegex(
        ValueError, r"filter_sizes must have 4 entries.*but got 3"):
      _graph_shape(lambda x, s: tf.constant([3, 3, 4]),
                   tf.TensorSpec([4], tf.int32))

  def test_negative_constant_filter_sizes_raise(self):
    # TensorFlow's shape refiner rejects the constant before dwop's shape
    # function sees its values, with TensorFlow's own message (the one
    # tf.nn.depthwise_conv2d_backprop_filter gives).
    with self.assertRaisesRegex(
        ValueError, r"Invalid value in tensor used for shape: -3"):
      _graph_shape(lambda x, s: tf.constant([3, -3, 4, 1]),
                   tf.TensorSpec([4], tf.int32))

  @parameterized.named_parameters(*[(d, d) for d in cases.DTYPES])
  def test_output_dtype_is_the_input_dtype(self, dtype):
    x = tf.zeros([1, 4, 4, 2], dtype)
    fn = tf.function(lambda x: dwop.depthwise_conv2d_backprop_filter(
        x, [3, 3, 2, 1], x, [1, 1, 1, 1], "SAME"))
    self.assertEqual(fn.get_concrete_function(x).output_dtypes,
                     tf.as_dtype(dtype))
    self.assertEqual(fn(x).dtype, tf.as_dtype(dtype))


_NATIVE_CHILD = """
import cases, testing, tf_paths
results = {}
for case in cases.CONFORMANCE:
  x, dy = case.random_inputs()
  path = None
  try:
    tf_result, path = tf_paths.tf_grad(case, x, dy)
    got = tf_paths.dwop_grad(case, x, dy)
    testing.check_case(case, x, dy, got, tf_result, path)
    results[case.name] = [path, None]
  except Exception as e:  # reported to the parent, one test per case
    results[case.name] = [path, f"{type(e).__name__}: {e}"]
report({"onednn": tf_paths.onednn_enabled(), "results": results})
"""


@functools.lru_cache(maxsize=None)
def _native_results():
  return testing.run_python_json(_NATIVE_CHILD, env=testing.NATIVE_TF)


class NativeTensorFlowTest(parameterized.TestCase):
  """The conformance checks against TensorFlow without oneDNN, whose native
  kernel rejects NCHW and unequal strides (so those cases compare with
  TensorFlow on other paths). One child process runs all the cases."""

  def test_child_runs_without_onednn(self):
    self.assertFalse(_native_results()["onednn"])

  @parameterized.named_parameters(cases.named(cases.CONFORMANCE))
  def test_case(self, case):
    path, error = _native_results()["results"][case.name]
    self.assertIsNone(error, f"(TensorFlow path {path})")
    if case.data_format == "NCHW" and not case.is_empty:
      self.assertTrue(path.endswith("_nhwc") or path == "unit_stride", path)


if __name__ == "__main__":
  absltest.main()
