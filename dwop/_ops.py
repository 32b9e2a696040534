"""The op's Python API, with tf.nn's signature and argument handling."""

import tensorflow as tf

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
