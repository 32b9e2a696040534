"""Conformance of dwop's forward (Dwop>DepthwiseConv2dNative) and input
gradient (Dwop>DepthwiseConv2dBackpropInput): every CONFORMANCE case (all
dtypes, both layouts, dilations with and without stride, unequal strides,
explicit asymmetric padding, empty shapes) against the float64 oracle
(python/reference.py) and against TensorFlow wherever TensorFlow is right;
TensorFlow's own kernel-test configurations; static shapes under
tf.function; gradients to second order; every validation rule.
"""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import cases
import dwop
from dwop import _loader
import reference
import testing
import tolerance
import tf_paths

Case = cases.Case


def random_filter(case, seed=1):
  """A filter exactly representable in every dtype (see Case.random_inputs)."""
  return np.random.default_rng(seed).integers(-8, 9, case.filter) / 8.0




def oracle_forward(case, x, w):
  return reference.depthwise_conv2d(x, w, case.tf_strides, case.tf_padding,
                                    case.data_format, case.tf_dilations)


def oracle_input_grad(case, w, dy):
  return reference.depthwise_conv2d_backprop_input(
      case.input_shape, w, dy, case.tf_strides, case.tf_padding,
      case.data_format, case.tf_dilations)


def dwop_forward(case, x, w):
  return dwop.depthwise_conv2d_native(
      tf_paths.tensor(x, case.dtype), tf_paths.tensor(w, case.dtype),
      case.tf_strides, case.tf_padding, data_format=case.data_format,
      dilations=case.tf_dilations).numpy()


def dwop_input_grad(case, w, dy, sizes_dtype=tf.int32):
  return dwop.depthwise_conv2d_backprop_input(
      tf.constant(case.input_shape, sizes_dtype),
      tf_paths.tensor(w, case.dtype),
      tf_paths.tensor(dy, case.dtype), case.tf_strides, case.tf_padding,
      data_format=case.data_format, dilations=case.tf_dilations).numpy()


def _nhwc(case):
  return case.replace(data_format="NHWC")


def _to_nhwc(a):
  return np.transpose(a, (0, 2, 3, 1))


def _to_nchw(a):
  return np.transpose(a, (0, 3, 1, 2))


def tf_forward(case, x, w):
  """(TensorFlow's forward on a path where it is right, the path's name), or
  (None, reason) where no TensorFlow path is right."""
  if case.is_empty:
    return np.zeros(case.out_backprop_shape), "zeros"
  if case.data_format == "NCHW":
    y, path = tf_forward(_nhwc(case), _to_nhwc(x), w)
    return (None if y is None else _to_nchw(y)), path + "_nhwc"
  if case.dilations != (1, 1):
    if case.strides != (1, 1):
      return None, "stride with dilation: TensorFlow is wrong"
    return tf.nn.depthwise_conv2d(
        tf_paths.tensor(x, case.dtype), tf_paths.tensor(w, case.dtype),
        case.tf_strides, case.tf_padding,
        dilations=case.dilations).numpy(), "space_to_batch"
  if case.strides[0] != case.strides[1]:
    return None, "unequal strides: TensorFlow rejects them"
  return tf.raw_ops.DepthwiseConv2dNative(
      input=tf_paths.tensor(x, case.dtype), filter=tf_paths.tensor(
          w, case.dtype), **_raw_attrs(case)).numpy(), "direct"


def tf_input_grad(case, w, dy):
  """TensorFlow's input gradient where it is right, as tf_forward."""
  if case.is_empty:
    return np.zeros(case.input_shape), "zeros"
  if case.data_format == "NCHW":
    dx, path = tf_input_grad(_nhwc(case), w, _to_nhwc(dy))
    return (None if dx is None else _to_nchw(dx)), path + "_nhwc"
  if case.dilations != (1, 1):
    if case.strides != (1, 1):
      return None, "stride with dilation: TensorFlow is wrong"
    x = tf.zeros(case.input_shape, case.dtype)
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = tf.nn.depthwise_conv2d(x, tf_paths.tensor(w, case.dtype),
                                 case.tf_strides, case.tf_padding,
                                 dilations=case.dilations)
    return tape.gradient(y, x, output_gradients=tf_paths.tensor(
        dy, case.dtype)).numpy(), "autodiff"
  if case.strides[0] != case.strides[1]:
    return None, "unequal strides: TensorFlow rejects them"
  return tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
      input_sizes=case.input_shape, filter=tf_paths.tensor(w, case.dtype),
      out_backprop=tf_paths.tensor(dy, case.dtype),
      **_raw_attrs(case)).numpy(), "direct"


def _raw_attrs(case):
  padding, explicit = dwop._ops.convert_padding(case.tf_padding)  # pylint: disable=protected-access
  return {"strides": case.tf_strides, "padding": padding,
          "explicit_paddings": explicit, "data_format": case.data_format,
          "dilations": case.tf_dilations}


def check(case, got, want, tf_result, tf_path, tol, what):
  """dwop (and TensorFlow, where right) within tol of the oracle; exact
  zeros for an empty case."""
  got = np.asarray(got)
  if got.dtype != testing.numpy_dtype(case.dtype):
    raise AssertionError(f"{what}: dtype {got.dtype}, expected {case.dtype}")
  if got.shape != want.shape:
    raise AssertionError(f"{what}: shape {got.shape}, expected {want.shape}")
  if tf_path == "zeros" and np.any(np.asarray(got, np.float64) != 0):
    raise AssertionError(f"{what}: empty case with non-zero elements")
  testing.assert_close(got, want, tol, f"dwop {what} vs the float64 oracle")
  if tf_result is not None:
    testing.assert_close(tf_result, want, tol,
                         f"TensorFlow ({tf_path}) {what} vs the oracle")


def check_op(case, a, b, oracle, dwop_op, tf_op, op, what):
  """One op on inputs a and b: dwop and TensorFlow vs the oracle, within
  tolerance.conv_atol(op); returns TensorFlow's path."""
  want = oracle(case, a, b)
  got = dwop_op(case, a, b)
  tf_result, path = tf_op(case, a, b)
  tol = tolerance.conv_atol(op, case.dtype, a, b, case.filter)
  check(case, got, want, tf_result, path, tol, what)
  return path


def check_forward(case, seed=0):
  x, _ = case.random_inputs(seed)
  w = random_filter(case, seed + 1)
  return check_op(case, x, w, oracle_forward, dwop_forward, tf_forward,
                  "forward", "forward")


def check_input_grad(case, seed=0):
  _, dy = case.random_inputs(seed)
  w = random_filter(case, seed + 1)
  return check_op(case, w, dy, oracle_input_grad, dwop_input_grad,
                  tf_input_grad, "input_grad", "input gradient")


class ForwardTest(parameterized.TestCase):
  """Dwop>DepthwiseConv2dNative on every CONFORMANCE case."""

  @parameterized.named_parameters(cases.named(cases.CONFORMANCE))
  def test_case(self, case):
    check_forward(case)


class InputGradTest(parameterized.TestCase):
  """Dwop>DepthwiseConv2dBackpropInput on every CONFORMANCE case."""

  @parameterized.named_parameters(cases.named(cases.CONFORMANCE))
  def test_case(self, case):
    check_input_grad(case)


_NATIVE_CHILD = """
import cases, conv_op_test, tf_paths
results = {}
for case in cases.cross_section(cases.CONFORMANCE):
  for op, check in (("forward", conv_op_test.check_forward),
                    ("input_grad", conv_op_test.check_input_grad)):
    try:
      results[f"{case.name}_{op}"] = [check(case), None]
    except Exception as e:  # reported to the parent, one test per case
      results[f"{case.name}_{op}"] = [None, f"{type(e).__name__}: {e}"]
report({"onednn": tf_paths.onednn_enabled(), "results": results})
"""


@functools.lru_cache(maxsize=None)
def _native_results():
  return testing.run_python_json(_NATIVE_CHILD, env=testing.NATIVE_TF)


class NativeTensorFlowTest(parameterized.TestCase):
  """A cross-section against TensorFlow without oneDNN (its native kernels
  refuse NCHW, so NCHW cases compare on transposed data), in one child
  process."""

  def test_child_runs_without_onednn(self):
    self.assertFalse(_native_results()["onednn"])

  @parameterized.named_parameters(
      (f"{case.name}_{op}", f"{case.name}_{op}")
      for case in cases.cross_section(cases.CONFORMANCE)
      for op in ("forward", "input_grad"))
  def test_case(self, key):
    path, error = _native_results()["results"][key]
    self.assertIsNone(error, f"(TensorFlow path {path})")


def _tf_configs():
  """TensorFlow's own kernel-test configurations for depthwise convolution
  (tensorflow/python/kernel_tests/nn_ops/depthwise_conv_op_base.py:
  ConfigsToTest, ConfigsToTestExplicit, CheckGradConfigsToTest), as
  (name, input NHWC, filter, stride, padding, dilations)."""
  configs = [
      ((4, 5, 5, 48), (1, 1, 48, 2), 1, "SAME", None),
      ((4, 8, 8, 84), (1, 3, 84, 1), 1, "SAME", None),
      ((4, 17, 17, 48), (3, 1, 48, 4), 1, "SAME", None),
      ((4, 9, 27, 8), (3, 3, 8, 1), 1, "SAME", None),
      ((4, 31, 31, 7), (3, 3, 7, 1), 1, "SAME", None),
      ((4, 35, 35, 2), (5, 5, 2, 1), 1, "SAME", None),
      ((4, 147, 147, 2), (3, 3, 2, 8), 3, "VALID", None),
      ((3, 299, 299, 3), (3, 2, 3, 8), 2, "SAME", None),
      ((5, 183, 183, 1), (5, 5, 1, 2), 2, "SAME", None),
      ((5, 41, 35, 2), (4, 7, 2, 2), 1, "SAME", (3, 2)),
      ((4, 5, 5, 48), (1, 1, 48, 2), 1, ((1, 2), (3, 4)), None),
      ((4, 1, 1, 3), (3, 3, 3, 2), 1, ((10, 20), (15, 25)), None),
      ((4, 9, 27, 8), (3, 3, 8, 1), 1, ((3, 4), (4, 2)), None),
      ((3, 299, 299, 3), (3, 2, 3, 8), 2, ((1, 2), (3, 5)), None),
      ((5, 183, 183, 1), (5, 5, 1, 2), 3, ((3, 2), (1, 0)), None),
      ((5, 29, 31, 1), (5, 4, 1, 2), 1, ((3, 2), (1, 0)), (2, 3)),
      ((4, 5, 5, 48), (3, 3, 48, 1), 1, ((0, 2), (0, 2)), None),
      ((1, 8, 7, 2), (8, 7, 2, 1), 1, ((0, 7), (3, 3)), None),
      ((2, 4, 3, 2), (3, 2, 2, 1), 1, ((2, 0), (1, 0)), None),
      ((2, 5, 8, 1), (4, 4, 1, 2), 1, "SAME", None),
      ((4, 5, 5, 1), (2, 2, 1, 2), 2, "VALID", None),
      ((2, 15, 16, 1), (3, 3, 1, 2), 3, "VALID", None),
      ((2, 5, 8, 1), (4, 3, 1, 2), 1, "SAME", (1, 2)),
      ((1, 3, 1, 2), (2, 1, 2, 1), 1, "SAME", None),
      ((2, 5, 8, 1), (3, 4, 1, 2), 1, ((3, 1), (2, 3)), (2, 1)),
  ]
  result = []
  for i, (x, f, s, p, d) in enumerate(configs):
    for layout in cases.LAYOUTS:
      result.append(Case(f"tf_config_{i}_{layout.lower()}", x, f, (s, s), p,
                         d or (1, 1), layout, "float32"))
  return result


TF_CONFIGS = _tf_configs()


class TensorFlowConfigsTest(parameterized.TestCase):
  """TensorFlow's own depthwise kernel-test configurations, both ops, float32,
  both layouts."""

  @parameterized.named_parameters(cases.named(TF_CONFIGS))
  def test_forward(self, case):
    check_forward(case)

  @parameterized.named_parameters(cases.named(TF_CONFIGS))
  def test_input_grad(self, case):
    check_input_grad(case)


def _static_params():
  return [(f"{case.name}_{op}", case, op)
          for case in cases.cross_section(cases.CONFORMANCE)
          for op in ("forward", "input_grad_const", "input_grad_arg")]


class GraphModeTest(parameterized.TestCase):
  """A cross-section under tf.function: the exact static shape, the same
  bits as eagerly."""

  @parameterized.named_parameters(_static_params())
  def test_static_shape_and_bits(self, case, op):
    x, dy = case.random_inputs()
    w = random_filter(case)
    x_t, w_t, dy_t = (tf_paths.tensor(a, case.dtype) for a in (x, w, dy))
    kwargs = dict(strides=case.tf_strides, padding=case.tf_padding,
                  data_format=case.data_format, dilations=case.tf_dilations)
    if op == "forward":
      fn = tf.function(lambda a, b: dwop.depthwise_conv2d_native(a, b,
                                                                 **kwargs))
      concrete = fn.get_concrete_function(x_t, w_t)
      got, eager = concrete(x_t, w_t), dwop_forward(case, x, w)
      expected_shape = case.out_backprop_shape
    elif op == "input_grad_const":
      fn = tf.function(lambda b, c: dwop.depthwise_conv2d_backprop_input(
          tf.constant(case.input_shape), b, c, **kwargs))
      concrete = fn.get_concrete_function(w_t, dy_t)
      got, eager = concrete(w_t, dy_t), dwop_input_grad(case, w, dy)
      expected_shape = case.input_shape
    else:
      fn = tf.function(dwop.depthwise_conv2d_backprop_input)
      concrete = fn.get_concrete_function(tf.TensorSpec([4], tf.int64), w_t,
                                          dy_t, **kwargs)
      got = concrete(tf.constant(case.input_shape, tf.int64), w_t, dy_t)
      eager = dwop_input_grad(case, w, dy, tf.int64)
      expected_shape = (None,) * 4
    self.assertEqual(tuple(concrete.output_shapes), tuple(expected_shape))
    np.testing.assert_array_equal(got.numpy().view(np.uint8),
                                  eager.view(np.uint8))


def _forward_shape(x_shape, w_shape, **kwargs):
  kwargs.setdefault("strides", [1, 1, 1, 1])
  kwargs.setdefault("padding", "SAME")
  fn = tf.function(lambda x, w: dwop.depthwise_conv2d_native(x, w, **kwargs))
  return fn.get_concrete_function(
      tf.TensorSpec(x_shape, tf.float32),
      tf.TensorSpec(w_shape, tf.float32)).output_shapes.as_list()


class ShapeFunctionTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("same", [2, 9, 9, 4], [3, 3, 4, 2], {}, [2, 9, 9, 8]),
      ("valid_s2x3", [2, 11, 13, 3], [3, 3, 3, 1],
       dict(strides=[1, 2, 3, 1], padding="VALID"), [2, 5, 4, 3]),
      ("same_s2_d2", [1, 11, 11, 1], [3, 3, 1, 1],
       dict(strides=[1, 2, 2, 1], dilations=[1, 2, 2, 1]), [1, 6, 6, 1]),
      ("valid_d2x3", [1, 12, 13, 2], [3, 3, 2, 3],
       dict(padding="VALID", dilations=[1, 2, 3, 1]), [1, 8, 7, 6]),
      ("explicit", [2, 7, 8, 3], [3, 3, 3, 1],
       dict(padding=[[0, 0], [1, 2], [0, 3], [0, 0]]), [2, 8, 9, 3]),
      ("nchw_s1x2", [2, 4, 9, 10], [3, 3, 4, 1],
       dict(strides=[1, 1, 1, 2], data_format="NCHW"), [2, 4, 9, 5]),
      ("unknown_batch", [None, 9, 9, 4], [3, 3, 4, 1], {}, [None, 9, 9, 4]),
      ("unknown_rows", [2, None, 9, 4], [3, 3, 4, 1], {}, [2, None, 9, 4]),
      ("unknown_input_depth", [2, 9, 9, None], [3, 3, 4, 2], {},
       [2, 9, 9, 8]),
      ("unknown_multiplier", [2, 9, 9, 4], [3, 3, 4, None], {},
       [2, 9, 9, None]),
      ("unknown_filter_rows", [2, 9, 9, 4], [None, 3, 4, 1],
       dict(padding="VALID"), [2, None, 7, 4]),
      ("unknown_rank", None, [3, 3, 4, 1], {}, [None] * 4),
  )
  def test_forward_shape(self, x_shape, w_shape, kwargs, expected):
    self.assertEqual(_forward_shape(x_shape, w_shape, **kwargs), expected)

  def test_forward_invalid_static_shapes_raise(self):
    with self.assertRaisesRegex(
        ValueError, r"DepthwiseConv2dNative: .*filter.*in_depth"):
      _forward_shape([2, 9, 9, 4], [3, 3, 5, 1])

  def test_input_grad_unknown_sizes_give_rank_4(self):
    fn = tf.function(lambda s, w, dy: dwop.depthwise_conv2d_backprop_input(
        s, w, dy, [1, 1, 1, 1], "SAME"))
    shape = fn.get_concrete_function(
        tf.TensorSpec([None], tf.int32), tf.TensorSpec(None, tf.float32),
        tf.TensorSpec(None, tf.float32)).output_shapes.as_list()
    self.assertEqual(shape, [None] * 4)

  @parameterized.named_parameters(("length_3", [3]), ("rank_2", [2, 2]))
  def test_input_sizes_of_static_shape_other_than_4_raise(self, shape):
    fn = tf.function(lambda s, w, dy: dwop.depthwise_conv2d_backprop_input(
        s, w, dy, [1, 1, 1, 1], "SAME"))
    with self.assertRaisesRegex(ValueError, "input_sizes"):
      fn.get_concrete_function(tf.TensorSpec(shape, tf.int32),
                               tf.TensorSpec(None, tf.float32),
                               tf.TensorSpec(None, tf.float32))

  def test_constant_input_sizes_of_length_3_raise(self):
    fn = tf.function(lambda w, dy: dwop.depthwise_conv2d_backprop_input(
        tf.constant([2, 9, 9]), w, dy, [1, 1, 1, 1], "SAME"))
    with self.assertRaisesRegex(ValueError,
                                r"input_sizes must have 4 entries.*but got 3"):
      fn.get_concrete_function(tf.TensorSpec(None, tf.float32),
                               tf.TensorSpec(None, tf.float32))

  @parameterized.named_parameters(*[(d, d) for d in cases.DTYPES])
  def test_output_dtype(self, dtype):
    x = tf.zeros([1, 4, 4, 2], dtype)
    w = tf.zeros([3, 3, 2, 1], dtype)
    self.assertEqual(dwop.depthwise_conv2d_native(
        x, w, [1, 1, 1, 1], "SAME").dtype, tf.as_dtype(dtype))
    self.assertEqual(dwop.depthwise_conv2d_backprop_input(
        [1, 4, 4, 2], w, x, [1, 1, 1, 1], "SAME").dtype, tf.as_dtype(dtype))

  def test_numpy_and_list_inputs(self):
    x = np.ones([1, 4, 4, 2], np.float32)
    w = [[[[1.0], [2.0]]]]  # 1x1x2x1
    y = dwop.depthwise_conv2d_native(x, w, [1, 1, 1, 1], "VALID")
    np.testing.assert_array_equal(y.numpy()[..., 1], 2 * np.ones([1, 4, 4]))
    dx = dwop.depthwise_conv2d_backprop_input(np.array([1, 4, 4, 2]), w,
                                              x, [1, 1, 1, 1], "VALID")
    np.testing.assert_array_equal(dx.numpy()[..., 1], 2 * np.ones([1, 4, 4]))


# --- Gradients.

SECOND_ORDER = [
    c.replace(name=f"{c.name}_{layout.lower()}", data_format=layout,
              dtype="float64")
    for c in [
        Case("same_m2", (1, 5, 5, 2), (3, 3, 2, 2)),
        Case("valid_s2x1_d2x3", (1, 9, 8, 2), (3, 2, 2, 1), (2, 1), "VALID",
             (2, 3)),
        Case("explicit_s2_d2", (1, 8, 7, 2), (3, 3, 2, 1), (2, 2),
             ((2, 1), (1, 2)), (2, 2)),
    ] for layout in cases.LAYOUTS
]


def _attrs(case):
  return dict(strides=case.tf_strides, padding=case.tf_padding,
              data_format=case.data_format, dilations=case.tf_dilations)


class GradientTest(parameterized.TestCase, tf.test.TestCase):
  """First and second order against numeric gradients (float64)."""
  test_session = None

  def _numeric(self, fn, args, tol=1e-7):
    theoretical, numerical = tf.test.compute_gradient(fn, args, delta=1e-4)
    for t, n in zip(theoretical, numerical):
      self.assertAllClose(t, n, rtol=tol, atol=tol)

  @parameterized.named_parameters(cases.named(SECOND_ORDER))
  def test_forward_first_order(self, case):
    x, _ = case.random_inputs()
    w = random_filter(case)
    self._numeric(lambda x, w: dwop.depthwise_conv2d_native(
        x, w, **_attrs(case)), [tf.constant(x), tf.constant(w)])

  @parameterized.named_parameters(cases.named(SECOND_ORDER))
  def test_input_grad_first_order(self, case):
    _, dy = case.random_inputs()
    w = random_filter(case)
    self._numeric(lambda w, dy: dwop.depthwise_conv2d_backprop_input(
        case.input_shape, w, dy, **_attrs(case)),
                  [tf.constant(w), tf.constant(dy)])

  @parameterized.named_parameters(cases.named(SECOND_ORDER))
  def test_second_order(self, case):
    """The gradient of d<sin(conv(x, w)), 1>/d(x, w), numerically: exercises
    the gradients of all three ops."""
    x, _ = case.random_inputs()
    w = random_filter(case)

    def first(x, w):
      with tf.GradientTape() as tape:
        tape.watch([x, w])
        loss = tf.reduce_sum(tf.sin(dwop.depthwise_conv2d_native(
            x, w, **_attrs(case))))
      dx, dw = tape.gradient(loss, [x, w])
      return tf.reduce_sum(dx**2) + tf.reduce_sum(dw**2)

    # Central differences of a non-linear function: error O(delta^2).
    self._numeric(first, [tf.constant(x), tf.constant(w)], tol=1e-6)

  def test_gradient_graph_uses_only_dwop_ops(self):
    case = SECOND_ORDER[1]
    x, _ = case.random_inputs()
    w = random_filter(case)

    @tf.function
    def second(x, w):
      with tf.GradientTape() as outer:
        outer.watch(w)
        with tf.GradientTape() as tape:
          tape.watch([x, w])
          loss = tf.reduce_sum(tf.sin(dwop.depthwise_conv2d_native(
              x, w, **_attrs(case))))
        dx = tape.gradient(loss, x)
        penalty = tf.reduce_sum(dx**2)
      return outer.gradient(penalty, w)

    graph = second.get_concrete_function(tf.constant(x), tf.constant(w)).graph
    types = {op.type for op in graph.get_operations()}
    for f in graph._functions.values():  # pylint: disable=protected-access
      types.update(node.op for node in f.definition.node_def)
    self.assertTrue({"Dwop>DepthwiseConv2dNative",
                     "Dwop>DepthwiseConv2dBackpropInput",
                     "Dwop>DepthwiseConv2dBackpropFilter"} <= types, types)
    self.assertFalse(
        {t for t in types if t.startswith("DepthwiseConv2dNative")}, types)


# --- Validation.

def _call(op, mode, x=(2, 9, 9, 4), w=(3, 3, 4, 1), dy=(2, 9, 9, 4),
          sizes=None, dtype="float32", w_dtype=None, **attrs):
  """Runs the op with zero tensors of the given shapes, eagerly or under
  tf.function with unknown shapes (so the kernel validates)."""
  attrs.setdefault("strides", [1, 1, 1, 1])
  attrs.setdefault("padding", "SAME")
  lib = _loader.load()
  if "explicit_paddings" not in attrs:
    attrs["padding"], attrs["explicit_paddings"] = dwop._ops.convert_padding(  # pylint: disable=protected-access
        attrs["padding"])
  if op == "forward":
    tensors = [tf.zeros(x, dtype), tf.zeros(w, w_dtype or dtype)]
    fn = lambda a, b: lib.dwop_depthwise_conv2d_native(a, b, **attrs)
  else:
    tensors = [tf.constant(x if sizes is None else sizes, tf.int32),
               tf.zeros(w, w_dtype or dtype), tf.zeros(dy, dtype)]
    fn = lambda s, b, c: lib.dwop_depthwise_conv2d_backprop_input(s, b, c,
                                                                  **attrs)
  if mode == "function":
    fn = tf.function(fn, input_signature=[tf.TensorSpec(None, t.dtype)
                                          for t in tensors])
  return fn(*tensors)


_NCHW = dict(x=(2, 4, 9, 9), dy=(2, 4, 9, 9), data_format="NCHW")

# (name, op, kwargs of _call, regex of the InvalidArgumentError's message).
ERRORS = [
    ("input_rank_3", "forward", dict(x=(9, 9, 4)),
     r"DepthwiseConv2dNative: input must be 4-dimensional \(NHWC\), but got "
     r"rank 3"),
    ("input_rank_5_nchw", "forward", dict(x=(2, 4, 9, 9, 1),
                                          data_format="NCHW"),
     r"input must be 4-dimensional \(NCHW\), but got rank 5"),
    ("filter_rank_3", "forward", dict(w=(3, 3, 4)),
     r"DepthwiseConv2dNative: filter must be 4-dimensional"),
    ("filter_depth", "forward", dict(w=(3, 3, 5, 1)),
     r"DepthwiseConv2dNative: .*filter.*in_depth.*4.*5|"
     r"DepthwiseConv2dNative: .*filter.*5.*in_depth.*4"),
    ("filter_depth_nchw", "forward", dict(w=(3, 3, 9, 1), **_NCHW),
     r"DepthwiseConv2dNative: .*filter.*in_depth"),
    ("ig_filter_rank_5", "input_grad", dict(w=(3, 3, 4, 1, 1)),
     r"DepthwiseConv2dBackpropInput: filter must be 4-dimensional"),
    ("ig_out_backprop_rank_3", "input_grad", dict(dy=(9, 9, 4)),
     r"DepthwiseConv2dBackpropInput: out_backprop must be 4-dimensional"),
    ("ig_filter_depth", "input_grad", dict(w=(3, 3, 5, 1)),
     r"DepthwiseConv2dBackpropInput: .*in_depth"),
    ("ig_out_depth", "input_grad", dict(w=(3, 3, 4, 2)),
     r"DepthwiseConv2dBackpropInput: out_backprop depth must be in_depth \* "
     r"depth_multiplier = 4 \* 2 = 8, but got 4"),
    ("ig_batch", "input_grad", dict(dy=(3, 9, 9, 4)),
     r"DepthwiseConv2dBackpropInput: .*batch"),
    ("ig_rows", "input_grad", dict(dy=(2, 8, 9, 4)),
     r"DepthwiseConv2dBackpropInput: out_backprop rows must be 9"),
    ("ig_rows_dilated", "input_grad",
     dict(dy=(2, 7, 7, 4), padding="VALID", dilations=[1, 2, 2, 1]),
     r"out_backprop rows must be 5, .*dilation 2"),
    ("ig_input_sizes_length_3", "input_grad", dict(sizes=(2, 9, 9)),
     r"DepthwiseConv2dBackpropInput: input_sizes must have 4 entries.*but got "
     r"3"),
    ("ig_input_sizes_rank_2", "input_grad", dict(sizes=((2, 9), (9, 4))),
     r"DepthwiseConv2dBackpropInput: input_sizes must be a 1-D tensor"),
    ("ig_input_sizes_negative", "input_grad", dict(sizes=(2, -9, 9, 4)),
     r"DepthwiseConv2dBackpropInput: input_sizes must be non-negative"),
    ("explicit_paddings_negative", "forward",
     dict(padding=[[0, 0], [-1, 1], [1, 1], [0, 0]]),
     r"DepthwiseConv2dNative: explicit_paddings must be non-negative"),
    ("ig_explicit_paddings_negative", "input_grad",
     dict(padding=[[0, 0], [1, 1], [1, -1], [0, 0]]),
     r"DepthwiseConv2dBackpropInput: explicit_paddings must be non-negative"),
    ("explicit_paddings_depth", "forward",
     dict(padding=[[0, 0], [1, 1], [1, 1], [0, 1]]),
     r"explicit_paddings must be 0 in the batch and depth dimensions"),
]
for _op, _prefix in (("forward", ""), ("input_grad", "ig_")):
  for _attr in ("strides", "dilations"):
    ERRORS += [
        (f"{_prefix}{_attr}_zero", _op, {_attr: [1, 0, 1, 1]},
         rf"{_attr} must be positive in every dimension, but got "
         rf"{_attr}=\[1,0,1,1\]"),
        (f"{_prefix}{_attr}_negative", _op, {_attr: [1, 1, -2, 1]},
         rf"{_attr} must be positive in every dimension"),
        (f"{_prefix}{_attr}_batch", _op, {_attr: [2, 1, 1, 1]},
         rf"{_attr} must be 1 in the batch and depth dimensions"),
        (f"{_prefix}{_attr}_depth_nchw", _op, {_attr: [1, 2, 1, 1], **_NCHW},
         rf"{_attr} must be 1 in the batch and depth dimensions, but got "
         rf"{_attr}=\[1,2,1,1\] for data_format NCHW"),
        (f"{_prefix}{_attr}_length_3", _op, {_attr: [1, 1, 1]},
         rf"{_attr} must have 4 entries"),
    ]


class ErrorsTest(parameterized.TestCase):
  """InvalidArgumentError naming the op and the argument, eagerly and under
  tf.function with unknown shapes."""

  @parameterized.named_parameters(
      (f"{name}_{mode}", op, kwargs, regex, mode)
      for name, op, kwargs, regex in ERRORS for mode in ("eager", "function"))
  def test_rule(self, op, kwargs, regex, mode):
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, regex):
      _call(op, mode, **kwargs)

  @parameterized.named_parameters(("forward", "forward"),
                                  ("input_grad", "input_grad"))
  def test_dtype_mismatch(self, op):
    with self.assertRaises((TypeError, tf.errors.InvalidArgumentError)):
      _call(op, "eager", w_dtype="float64")

  def test_padding_explicit_string_raises_value_error(self):
    with self.assertRaisesRegex(ValueError, "'EXPLICIT' is not a valid"):
      dwop.depthwise_conv2d_native(tf.zeros([1, 3, 3, 1]),
                                   tf.zeros([1, 1, 1, 1]), [1, 1, 1, 1],
                                   "EXPLICIT")


_HUGE_CHILD = """
import tensorflow as tf
import dwop
results = {}
def run(name, fn):
  try:
    out = fn()
    results[name] = ["ok", list(out.shape)]
  except Exception as e:  # reported to the parent
    results[name] = [type(e).__name__, str(e)[:300]]
big = 2**20
one = tf.ones([1, 1, 1, 1])
# Valid, but the output has 2^42 (forward) and 2^61 (input gradient)
# elements: TensorFlow's allocator must refuse, not crash.
run("forward_huge_output", lambda: dwop.depthwise_conv2d_native(
    one, one, [1, 1, 1, 1], [[0, 0], [big, big], [big, big], [0, 0]]))
run("input_grad_huge_output", lambda: dwop.depthwise_conv2d_backprop_input(
    tf.constant([1, 2**28, 2**28, 2], tf.int64), tf.ones([1, 1, 2, 1]),
    tf.ones([1, 1, 1, 2]), [1, 2**28, 2**28, 1], "VALID"))
run("input_grad_bytes_overflow", lambda: dwop.depthwise_conv2d_backprop_input(
    tf.constant([1, 2**31, 2**31, 1], tf.int64),
    tf.ones([1, 1, 1, 1]), tf.ones([1, 1, 1, 1]),
    [1, 2**31, 2**31, 1], "VALID"))
# Huge but empty: zeros, no allocation.
run("input_grad_huge_empty", lambda: dwop.depthwise_conv2d_backprop_input(
    tf.constant([0, 2**40, 2**40, 1], tf.int64), tf.ones([1, 1, 1, 1]),
    tf.zeros([0, 2**40, 2**40, 1]), [1, 1, 1, 1], "VALID"))
report(results)
"""


@functools.lru_cache(maxsize=None)
def _huge_results():
  return testing.run_python_json(_HUGE_CHILD)


class HugeSizesTest(parameterized.TestCase):
  """Huge but valid sizes: ResourceExhaustedError, never a crash or a C++
  exception through TensorFlow (run in a child process)."""

  @parameterized.named_parameters(("forward", "forward_huge_output"),
                                  ("input_grad", "input_grad_huge_output"))
  def test_resource_exhausted(self, name):
    kind, message = _huge_results()[name]
    self.assertEqual(kind, "ResourceExhaustedError", message)

  def test_byte_size_overflow_is_invalid(self):
    kind, message = _huge_results()["input_grad_bytes_overflow"]
    self.assertEqual(kind, "InvalidArgumentError", message)
    self.assertRegex(message,
                     r"input_sizes shape \[1,2147483648,2147483648,1\] "
                     r"is too large: its size in bytes overflows int64")

  def test_huge_empty_is_zeros(self):
    self.assertEqual(_huge_results()["input_grad_huge_empty"][0], "ok")


if __name__ == "__main__":
  absltest.main()
