"""The op's Python API, with tf.nn's signature and argument handling."""

import warnings

import tensorflow as tf

from dwop import _grad
from dwop import _loader


def convert_padding(padding, expected_length=4):
  """Splits tf.nn's `padding` argument into the op's padding attributes.

  Same rules and messages as TensorFlow's `nn_ops.convert_padding`: a string
  passes through, a list of `expected_length` pairs becomes
  `padding="EXPLICIT"` plus the flattened `explicit_paddings`, and the string
  "EXPLICIT" itself is refused.

  Args:
    padding: "SAME", "VALID", or a list of [before, after] pairs, one per
      dimension in data_format order.
    expected_length: Number of pairs a list must have.

  Returns:
    A `(padding, explicit_paddings)` pair of attribute values.

  Raises:
    ValueError: If `padding` is "EXPLICIT" or a malformed list.
  """
  explicit_paddings = []
  if padding == "EXPLICIT":
    raise ValueError("'EXPLICIT' is not a valid value for `padding`. To use "
                     "explicit padding, `padding` must be a list.")
  if isinstance(padding, (list, tuple)):
    for i, dim_paddings in enumerate(padding):
      if not isinstance(dim_paddings, (list, tuple)):
        raise ValueError("When `padding` is a list, each element of `padding` "
                         "must be a list/tuple of size 2. Received: "
                         f"padding={padding} with element at index {i} of type "
                         f"{type(dim_paddings)}")
      if len(dim_paddings) != 2:
        raise ValueError("When `padding` is a list, each element of `padding` "
                         "must be a list/tuple of size 2. Received: "
                         f"padding={padding} with element at index {i} of size "
                         f"{len(dim_paddings)}")
      explicit_paddings.extend(dim_paddings)
    if len(padding) != expected_length:
      raise ValueError(
          f"When padding is a list, it must be of size {expected_length}. "
          f"Received: padding={padding} of size {len(padding)}")
    padding = "EXPLICIT"
  return padding, explicit_paddings


def depthwise_conv2d_backprop_filter(input,  # pylint: disable=redefined-builtin
                                     filter_sizes,
                                     out_backprop,
                                     strides,
                                     padding,
                                     data_format="NHWC",
                                     dilations=[1, 1, 1, 1],  # pylint: disable=dangerous-default-value
                                     name=None):
  """Computes the gradient of a depthwise convolution with respect to the filter.

  A drop-in for `tf.nn.depthwise_conv2d_backprop_filter` that honours
  `dilations`, accepts unequal strides and NCHW on CPU, accumulates half and
  bfloat16 in float32, never returns uninitialised memory, and is bitwise
  reproducible from run to run and for any number of threads.

  Args:
    input: A `Tensor` of type `half`, `bfloat16`, `float32` or `float64`, 4-D:
      `[batch, in_height, in_width, in_channels]` for NHWC,
      `[batch, in_channels, in_height, in_width]` for NCHW.
    filter_sizes: An `int32` or `int64` 1-D `Tensor` holding the shape of the
      filter, `[filter_height, filter_width, in_channels, depth_multiplier]`.
    out_backprop: A `Tensor` of the same type as `input`, 4-D: the gradient of
      the convolution's output, with `in_channels * depth_multiplier` channels.
    strides: A list of 4 `ints`, the stride of the sliding window for each
      dimension of `input`; 1 in the batch and depth dimensions.
    padding: "SAME", "VALID", or a list of 4 `[before, after]` pairs in
      data_format order (explicit padding, zero in the batch and depth
      dimensions).
    data_format: "NHWC" (default) or "NCHW".
    dilations: A list of 4 `ints`, the dilation rate for each dimension of
      `input`; 1 in the batch and depth dimensions. Defaults to `[1, 1, 1, 1]`.
    name: A name for the operation (optional).

  Returns:
    A `Tensor` of the same type as `input` and of shape `filter_sizes`.

  Raises:
    ValueError: If `padding` is malformed.
    tf.errors.InvalidArgumentError: If the shapes or attributes do not describe
      a valid depthwise convolution; the message names the argument, its value
      and what was expected.
    dwop.LibraryError: On the first call, if the op library is missing or was
      built against another TensorFlow.
  """
  padding, explicit_paddings = convert_padding(padding)
  return _loader.load().dwop_depthwise_conv2d_backprop_filter(
      input=input,
      filter_sizes=filter_sizes,
      out_backprop=out_backprop,
      strides=strides,
      padding=padding,
      explicit_paddings=explicit_paddings,
      data_format=data_format,
      dilations=dilations,
      name=name)


def _depthwise_conv2d_native(input, filter, strides, padding, data_format,  # pylint: disable=redefined-builtin
                             name):
  """TensorFlow's `DepthwiseConv2dNative` forward, with dwop's filter gradient."""
  padding, explicit_paddings = convert_padding(padding)
  attrs = {
      "strides": list(strides),
      "padding": padding,
      "explicit_paddings": explicit_paddings,
      "data_format": data_format or "NHWC",
      "dilations": [1, 1, 1, 1],
  }

  @tf.custom_gradient
  def conv(x, w):
    y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=w, name=name, **attrs)

    def grad(dy):
      return _grad.conv_grads(x, w, dy, attrs)

    return y, grad

  return conv(input, filter)


def _depthwise_with_space_to_batch(input, filter, strides, padding,  # pylint: disable=redefined-builtin
                                   data_format, dilations, name):
  """tf.nn's depthwise structure: dilation by space_to_batch around the op."""
  rate = dilations if dilations is not None else [1, 1]
  if any(r > 1 for r in rate) and any(s != 1 for s in strides):
    warnings.warn("When dilation rate is greater than 1, then all values of "
                  f"strides must be 1. Received: `dilation rate` {rate} and "
                  f"`strides` {strides}")

  def op(input_converted, _, padding):
    return _depthwise_conv2d_native(input_converted, filter, strides, padding,
                                    data_format, name)

  return tf.nn.with_space_to_batch(input, dilation_rate=rate, padding=padding,
                                   op=op, filter_shape=tf.shape(filter),
                                   data_format=data_format)


def depthwise_conv2d(input, filter, strides, padding, data_format=None,  # pylint: disable=redefined-builtin
                     dilations=None, name=None):
  """Depthwise 2-D convolution whose filter gradient is computed by dwop.

  A drop-in for `tf.nn.depthwise_conv2d`: same arguments, same structure
  (dilation through space_to_batch around TensorFlow's
  `DepthwiseConv2dNative`) and the same forward result and input gradient
  (TensorFlow's backprop-input op). Only dL/dfilter differs: dwop's op
  computes it, whether or not `dwop.enable()` is in force. Under XLA
  (`jit_compile=True`) the filter gradient falls back to TensorFlow's op.

  With the default NHWC format,

      output[b, i, j, k * channel_multiplier + q] =
          sum_{di, dj} filter[di, dj, k, q] *
                       input[b, strides[1] * i + dilations[0] * di,
                                strides[2] * j + dilations[1] * dj, k]

  Args:
    input: 4-D `Tensor` with shape according to `data_format`, of type
      `half`, `bfloat16`, `float32` or `float64`.
    filter: 4-D `Tensor` of the same type, with shape
      `[filter_height, filter_width, in_channels, channel_multiplier]`.
    strides: 1-D of size 4. The stride of the sliding window for each
      dimension of `input`.
    padding: "SAME", "VALID", or a list of 4 `[before, after]` pairs in
      data_format order (explicit padding).
    data_format: The data format of `input`: "NHWC" (default) or "NCHW".
    dilations: 1-D of size 2. The dilation rate in which input values are
      sampled across the `height` and `width` dimensions (atrous
      convolution). If it is greater than 1, all values of strides must be 1.
    name: A name for this operation (optional).

  Returns:
    A 4-D `Tensor` with shape according to `data_format`: for NHWC,
    `[batch, out_height, out_width, in_channels * channel_multiplier]`.

  Raises:
    ValueError: If `padding` is malformed.
    dwop.LibraryError: When the gradient is first computed, if the op library
      is missing or was built against another TensorFlow.
  """
  with tf.name_scope(name or "depthwise") as scope:
    input = tf.convert_to_tensor(input, name="tensor_in")
    filter = tf.convert_to_tensor(filter, name="filter_in")
    return _depthwise_with_space_to_batch(input, filter, strides, padding,
                                          data_format, dilations, scope)


def separable_conv2d(input, depthwise_filter, pointwise_filter, strides,  # pylint: disable=redefined-builtin
                     padding, data_format=None, dilations=None, name=None):
  """2-D convolution with separable filters; dwop computes the depthwise filter's gradient.

  A drop-in for `tf.nn.separable_conv2d` with the same structure and forward
  result: a depthwise convolution (as in `dwop.depthwise_conv2d`) followed
  by a 1x1 `tf.nn.conv2d` that mixes channels.

  Args:
    input: 4-D `Tensor` with shape according to `data_format`.
    depthwise_filter: 4-D `Tensor` with shape
      `[filter_height, filter_width, in_channels, channel_multiplier]`.
    pointwise_filter: 4-D `Tensor` with shape
      `[1, 1, channel_multiplier * in_channels, out_channels]`.
    strides: 1-D of size 4. The strides of the depthwise convolution for each
      dimension of `input`.
    padding: "SAME", "VALID", or a list of 4 `[before, after]` pairs in
      data_format order; applies to the depthwise convolution.
    data_format: The data format of `input`: "NHWC" (default) or "NCHW".
    dilations: 1-D of size 2. The dilation rate of the depthwise convolution.
      If it is greater than 1, all values of strides must be 1.
    name: A name for this operation (optional).

  Returns:
    A 4-D `Tensor` with shape according to `data_format`: for NHWC,
    `[batch, out_height, out_width, out_channels]`.

  Raises:
    ValueError: If `padding` is malformed or `pointwise_filter` is not 1x1.
    dwop.LibraryError: When the gradient is first computed, if the op library
      is missing or was built against another TensorFlow.
  """
  with tf.name_scope(name or "separable_conv2d") as scope:
    input = tf.convert_to_tensor(input, name="tensor_in")
    depthwise_filter = tf.convert_to_tensor(depthwise_filter,
                                            name="depthwise_filter")
    pointwise_filter = tf.convert_to_tensor(pointwise_filter,
                                            name="pointwise_filter")
    pointwise_shape = pointwise_filter.shape.with_rank(4)
    pointwise_shape.dims[0].assert_is_compatible_with(1)
    pointwise_shape.dims[1].assert_is_compatible_with(1)
    depthwise = _depthwise_with_space_to_batch(input, depthwise_filter,
                                               strides, padding, data_format,
                                               dilations, "depthwise")
    return tf.nn.conv2d(depthwise, pointwise_filter, [1, 1, 1, 1],
                        padding="VALID", data_format=data_format or "NHWC",
                        name=scope)
