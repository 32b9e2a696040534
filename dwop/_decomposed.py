"""A depthwise forward from TensorFlow's own ops, right for every attribute.

TensorFlow's CPU kernels ignore or refuse dilations, refuse unequal strides
and (without oneDNN) NCHW; `depthwise_forward` computes
`DepthwiseConv2dNative` as it is defined anyway, from ops that XLA compiles
and that have correct registered gradients. dwop uses it where its own op
cannot run: under XLA (`jit_compile=True`), for the forward of
`dwop.depthwise_conv2d` and the gradients of dwop's ops; and Keras' layers use
`depthwise_nhwc_decomposed` as Keras itself does.
"""

import tensorflow as tf
from tensorflow.python.ops import gen_nn_ops


def spatial(values, data_format):
  """(rows, cols) entries of a 4-element per-dimension list."""
  return ((values[1], values[2]) if data_format == "NHWC" else
          (values[2], values[3]))


def native_supports(attrs):
  """Whether TensorFlow's CPU kernels compute this configuration correctly.

  They ignore or refuse dilations, refuse unequal strides, and refuse NCHW
  (without oneDNN); everything else (SAME, VALID, EXPLICIT, any stride, any
  multiplier) they get right on every device.
  """
  rows, cols = spatial(attrs["strides"], attrs["data_format"])
  return (attrs["data_format"] == "NHWC" and rows == cols and
          all(d == 1 for d in attrs["dilations"]))


def _dim(t, i):
  """Static size of dimension i of t, or a scalar tensor when unknown."""
  size = t.shape[i]
  return size if size is not None else tf.shape(t)[i]


def _max0(value):
  return max(value, 0) if isinstance(value, int) else tf.maximum(value, 0)


def same_pads(in_size, filter_size, stride, dilation):
  """TensorFlow's SAME padding (before, after) along one dimension."""
  out_size = (in_size + stride - 1) // stride
  total = _max0((out_size - 1) * stride + (filter_size - 1) * dilation + 1 -
                in_size)
  return total // 2, total - total // 2


def depthwise_nhwc_decomposed(x, w, strides, padding, dilations, conv):
  """Depthwise convolution of an NHWC `x` as pad, stride-1 conv, subsample.

  The decomposition Keras uses when strides and dilations both exceed 1,
  which also gives unequal strides and explicit padding with dilation.

  Args:
    x: NHWC input.
    w: `[filter_height, filter_width, in_channels, channel_multiplier]`.
    strides: (rows, cols) strides.
    padding: "SAME", "VALID", or ((top, bottom), (left, right)).
    dilations: (rows, cols) dilation rates.
    conv: a `tf.nn.depthwise_conv2d`-like function used for the stride-1,
      VALID, dilated convolution.

  Returns:
    The NHWC output.
  """
  if padding == "SAME":
    padding = tuple(
        same_pads(_dim(x, 1 + i), _dim(w, i), strides[i], dilations[i])
        for i in range(2))
  if padding != "VALID":
    x = tf.pad(x, [[0, 0], list(padding[0]), list(padding[1]), [0, 0]])
  y = conv(x, w, [1, 1, 1, 1], "VALID", dilations=list(dilations))
  if tuple(strides) != (1, 1):
    y = y[:, ::strides[0], ::strides[1], :]
  return y


def depthwise_forward(x, w, attrs):
  """`DepthwiseConv2dNative(x, w, **attrs)` as it is defined, on any device.

  TensorFlow's native op where it is right (`native_supports`); otherwise
  NCHW is transposed to NHWC, and dilations or unequal strides are decomposed
  into explicit padding, a stride-1 dilated convolution
  (`tf.nn.depthwise_conv2d`, which dilates with space_to_batch) and a strided
  slice. Every op used has a correct registered gradient, so the result
  differentiates to any order.
  """
  if native_supports(attrs):
    return gen_nn_ops.depthwise_conv2d_native(x, w, **attrs)
  data_format = attrs["data_format"]
  strides = spatial(attrs["strides"], data_format)
  dilations = spatial(attrs["dilations"], data_format)
  padding = attrs["padding"]
  explicit = []
  if padding == "EXPLICIT":
    pads = attrs["explicit_paddings"]
    padding = spatial([pads[2 * i:2 * i + 2] for i in range(4)], data_format)
    explicit = [0, 0, *padding[0], *padding[1], 0, 0]
  if data_format == "NCHW":
    x = tf.transpose(x, [0, 2, 3, 1])
  nhwc = {"strides": [1, *strides, 1], "dilations": [1, *dilations, 1],
          "padding": attrs["padding"], "explicit_paddings": explicit,
          "data_format": "NHWC"}
  if native_supports(nhwc):
    y = gen_nn_ops.depthwise_conv2d_native(x, w, **nhwc)
  else:
    y = depthwise_nhwc_decomposed(x, w, strides, padding, dilations,
                                  tf.nn.depthwise_conv2d)
  if data_format == "NCHW":
    y = tf.transpose(y, [0, 3, 1, 2])
  return y


def input_grad(input_sizes, w, dy, attrs):
  """dL/dinput of `depthwise_forward`: TensorFlow's backprop-input op where
  it is right, otherwise the autodiff of the decomposition."""
  if native_supports(attrs):
    return gen_nn_ops.depthwise_conv2d_native_backprop_input(
        input_sizes, w, dy, **attrs)
  x = tf.zeros(input_sizes, w.dtype)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = depthwise_forward(x, w, attrs)
  return tape.gradient(y, x, output_gradients=dy)
