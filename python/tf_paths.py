"""dwop's and TensorFlow's filter gradients for a case, as NumPy arrays.

`tf_grad` answers with TensorFlow on a path where TensorFlow 2.21 is right
(tests/tf_defects_test.py documents the paths where it is not):

- "zeros": a case with nothing to sum. The right answer is exact zeros;
  TensorFlow's native kernel returns uninitialised memory instead.
- "direct": tf.nn.depthwise_conv2d_backprop_filter itself.
- "autodiff": dilations, stride 1. TensorFlow's op ignores dilations on CPU,
  but the gradient of tf.nn.depthwise_conv2d (space_to_batch around an
  undilated convolution) is right.
- "unit_stride": strides > 1 together with dilations, or unequal strides where
  TensorFlow rejects them. TensorFlow's op on the equivalent undilated,
  unit-stride problem: out_backprop is spread over a stride-1 grid (zeros in
  between), the filter grows to its dilated extent, and the taps of the real
  filter are read back from every dilation-th position.

An NCHW case that TensorFlow rejects (its native CPU kernel only supports NHWC)
runs on the transposed NHWC data; the path then ends in "_nhwc".

Imports TensorFlow: only for suites that test against it.
"""

import warnings

import numpy as np
import tensorflow as tf

import dwop
import reference
import testing


def to_nhwc(case, x, dy):
  """The case and its arrays in NHWC (no-op for NHWC)."""
  if case.data_format == "NHWC":
    return case, x, dy
  return (case.replace(data_format="NHWC"), np.transpose(x, (0, 2, 3, 1)),
          np.transpose(dy, (0, 2, 3, 1)))


def tensor(array, dtype):
  return tf.constant(np.asarray(array, testing.numpy_dtype(dtype)))


def dwop_grad(case, x, dy):
  """dwop's gradient, eagerly."""
  out = dwop.depthwise_conv2d_backprop_filter(
      tensor(x, case.dtype), case.filter, tensor(dy, case.dtype),
      case.tf_strides, case.tf_padding,
      data_format=case.data_format, dilations=case.tf_dilations)
  return out.numpy()


def tf_direct(case, x, dy):
  """tf.nn.depthwise_conv2d_backprop_filter, as is."""
  return tf.nn.depthwise_conv2d_backprop_filter(
      tensor(x, case.dtype), case.filter, tensor(dy, case.dtype),
      case.tf_strides, case.tf_padding, data_format=case.data_format,
      dilations=case.tf_dilations).numpy()


def tf_autodiff(case, x, dy):
  """The filter gradient of tf.nn.depthwise_conv2d, by GradientTape."""
  w = tf.zeros(case.filter, tf.as_dtype(case.dtype))
  with tf.GradientTape() as tape:
    tape.watch(w)
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      y = tf.nn.depthwise_conv2d(
          tensor(x, case.dtype), w, case.tf_strides, case.tf_padding,
          data_format=case.data_format, dilations=case.dilations)
  return tape.gradient(y, w, output_gradients=tensor(dy, case.dtype)).numpy()


def tf_unit_stride(case, x, dy):
  """TensorFlow's op on the equivalent unit-stride, undilated NHWC problem."""
  case, x, dy = to_nhwc(case, x, dy)
  n, h, w, _ = x.shape
  _, oh, ow, depth = dy.shape
  kh, kw, c, m = case.filter
  padding = case.tf_padding
  spread_shape, pads, extent = [n, 0, 0, depth], [[0, 0]], []
  for i, (size, k, s, d) in enumerate(
      zip((h, w), (kh, kw), case.strides, case.dilations)):
    extent.append((k - 1) * d + 1)
    out, before = reference.output_size(
        size, k, s, d,
        padding if isinstance(padding, str) else tuple(padding[i + 1]))
    assert out == (oh, ow)[i]
    # Enough padding after that the stride-1 output covers the spread grid.
    after = max(0, (out - 1) * s + extent[i] - size - before)
    spread_shape[i + 1] = size + before + after - extent[i] + 1
    pads.append([before, after])
  pads.append([0, 0])
  spread = np.zeros(spread_shape)
  spread[:, :(oh - 1) * case.strides[0] + 1:case.strides[0],
         :(ow - 1) * case.strides[1] + 1:case.strides[1], :] = dy
  full = tf.nn.depthwise_conv2d_backprop_filter(
      tensor(x, case.dtype), [extent[0], extent[1], c, m],
      tensor(spread, case.dtype), [1, 1, 1, 1], pads).numpy()
  return full[::case.dilations[0], ::case.dilations[1]]


def _in_some_layout(fn, case, x, dy, path):
  """fn on the case; on NHWC data where TensorFlow rejects NCHW."""
  try:
    return fn(case, x, dy), path
  except tf.errors.UnimplementedError:
    if case.data_format != "NCHW":
      raise
    return fn(*to_nhwc(case, x, dy)), path + "_nhwc"


def tf_grad(case, x, dy):
  """(TensorFlow's gradient on a path where it is right, the path's name)."""
  if case.is_empty:
    return np.zeros(case.filter), "zeros"
  dilated = case.dilations != (1, 1)
  if dilated and case.strides == (1, 1):
    return _in_some_layout(tf_autodiff, case, x, dy, "autodiff")
  if dilated:
    return tf_unit_stride(case, x, dy), "unit_stride"
  try:
    return _in_some_layout(tf_direct, case, x, dy, "direct")
  except tf.errors.InvalidArgumentError:
    if case.strides[0] == case.strides[1]:
      raise
    # Unequal strides: only TensorFlow's oneDNN kernel accepts them.
    return tf_unit_stride(case, x, dy), "unit_stride"


def onednn_enabled():
  """Whether this process's TensorFlow rewrites the op to oneDNN's kernel.

  Probed by behaviour, not by the environment: only the oneDNN kernel accepts
  NCHW on CPU.
  """
  try:
    tf.nn.depthwise_conv2d_backprop_filter(
        tf.zeros([1, 1, 3, 3]), [1, 1, 1, 1], tf.zeros([1, 1, 3, 3]),
        [1, 1, 1, 1], "SAME", data_format="NCHW")
    return True
  except tf.errors.UnimplementedError:
    return False
