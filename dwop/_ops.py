"""The ops' Python API, with tf.nn's signatures and argument handling."""

import tensorflow as tf

from dwop import _decomposed
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


def _op_attrs(strides, padding, data_format, dilations):
  """The attributes of dwop's ops, `padding` split as convert_padding does."""
  padding, explicit_paddings = convert_padding(padding)
  return {
      "strides": strides,
      "padding": padding,
      "explicit_paddings": explicit_paddings,
      "data_format": data_format,
      "dilations": dilations,
  }


def depthwise_conv2d_backprop_filter(input,  # pylint: disable=redefined-builtin
                                     filter_sizes,
                                     out_backprop,
                                     strides,
                                     padding,
                                     data_format="NHWC",
                                     dilations=[1, 1, 1, 1],  # pylint: disable=dangerous-default-value
                                     name=None):
  """Computes the gradient of a depthwise convolution with respect to filter.

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
  return _loader.load().dwop_depthwise_conv2d_backprop_filter(
      input=input,
      filter_sizes=filter_sizes,
      out_backprop=out_backprop,
      name=name,
      **_op_attrs(strides, padding, data_format, dilations))


def depthwise_conv2d_native(input,  # pylint: disable=redefined-builtin
                            filter,  # pylint: disable=redefined-builtin
                            strides,
                            padding,
                            data_format="NHWC",
                            dilations=[1, 1, 1, 1],  # pylint: disable=dangerous-default-value
                            name=None):
  """Computes a 2-D depthwise convolution.

  A drop-in for `tf.nn.depthwise_conv2d_native` (`tf.raw_ops.
  DepthwiseConv2dNative`) that honours `dilations` (with or without strides),
  accepts unequal strides and NCHW on CPU, accumulates half and bfloat16 in
  float32, and is bitwise reproducible. Its gradients are dwop's ops, to any
  order.

  With NHWC, for `ih = i * strides[1] + di * dilations[1] - pad_top` and
  `iw = j * strides[2] + dj * dilations[2] - pad_left` (zero outside the
  input),

      output[b, i, j, k * channel_multiplier + q] =
          sum_{di, dj} input[b, ih, iw, k] * filter[di, dj, k, q]

  Args:
    input: A `Tensor` of type `half`, `bfloat16`, `float32` or `float64`, 4-D:
      `[batch, in_height, in_width, in_channels]` for NHWC,
      `[batch, in_channels, in_height, in_width]` for NCHW.
    filter: A `Tensor` of the same type as `input`, 4-D: `[filter_height,
      filter_width, in_channels, channel_multiplier]`.
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
    A `Tensor` of the same type as `input`, 4-D: `[batch, out_height,
    out_width, in_channels * channel_multiplier]` for NHWC (NCHW likewise).

  Raises:
    ValueError: If `padding` is malformed, or (under tf.function) the static
      shapes do not describe a valid depthwise convolution.
    tf.errors.InvalidArgumentError: If the shapes or attributes do not describe
      a valid depthwise convolution; the message names the argument, its value
      and what was expected.
    tf.errors.ResourceExhaustedError: If the output is too large to allocate.
    dwop.LibraryError: On the first call, if the op library is missing or was
      built against another TensorFlow.
  """
  return _loader.load().dwop_depthwise_conv2d_native(
      input=input,
      filter=filter,
      name=name,
      **_op_attrs(strides, padding, data_format, dilations))


def depthwise_conv2d_backprop_input(input_sizes,
                                    filter,  # pylint: disable=redefined-builtin
                                    out_backprop,
                                    strides,
                                    padding,
                                    data_format="NHWC",
                                    dilations=[1, 1, 1, 1],  # pylint: disable=dangerous-default-value
                                    name=None):
  """Computes the gradient of a depthwise convolution with respect to the input.

  A drop-in for `tf.nn.depthwise_conv2d_backprop_input` that honours
  `dilations` (TensorFlow's CPU kernel silently ignores them), accepts
  unequal strides and NCHW on CPU, accumulates half and bfloat16 in float32,
  and is bitwise reproducible. Its gradients are dwop's ops, to any order.

  Args:
    input_sizes: An `int32` or `int64` 1-D `Tensor` of 4 entries, the shape of
      `input` in data_format order.
    filter: A `Tensor` of type `half`, `bfloat16`, `float32` or `float64`,
      4-D: `[filter_height, filter_width, in_channels, depth_multiplier]`.
    out_backprop: A `Tensor` of the same type as `filter`, 4-D: the gradient
      of the convolution's output, with `in_channels * depth_multiplier`
      channels.
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
    A `Tensor` of the same type as `filter` and of shape `input_sizes` (exact
    static shape under tf.function when `input_sizes` is constant).

  Raises:
    ValueError: If `padding` is malformed.
    tf.errors.InvalidArgumentError: If the shapes or attributes do not describe
      a valid depthwise convolution; the message names the argument, its value
      and what was expected.
    tf.errors.ResourceExhaustedError: If the output is too large to allocate.
    dwop.LibraryError: On the first call, if the op library is missing or was
      built against another TensorFlow.
  """
  return _loader.load().dwop_depthwise_conv2d_backprop_input(
      input_sizes=input_sizes,
      filter=filter,
      out_backprop=out_backprop,
      name=name,
      **_op_attrs(strides, padding, data_format, dilations))


def _depthwise(input, filter, strides, padding, data_format, dilations,  # pylint: disable=redefined-builtin
               name):
  """tf.nn.depthwise_conv2d's arguments -> dwop's forward op.

  Under XLA, where a custom op cannot compile, TensorFlow's ops compute the
  same convolution (dwop/_decomposed.py).
  """
  data_format = data_format or "NHWC"
  rows, cols = dilations if dilations is not None else (1, 1)
  padding, explicit_paddings = convert_padding(padding)
  attrs = {
      "strides": list(strides),
      "padding": padding,
      "explicit_paddings": explicit_paddings,
      "data_format": data_format,
      "dilations": ([1, rows, cols, 1] if data_format == "NHWC" else
                    [1, 1, rows, cols]),
  }
  if _grad.in_xla_context():
    return _decomposed.depthwise_forward(input, filter, attrs)
  return _loader.load().dwop_depthwise_conv2d_native(input, filter, name=name,
                                                     **attrs)


def depthwise_conv2d(input, filter, strides, padding, data_format=None,  # pylint: disable=redefined-builtin
                     dilations=None, name=None):
  """Depthwise 2-D convolution computed by dwop's ops, gradients included.

  A drop-in for `tf.nn.depthwise_conv2d`, same arguments: the forward is
  dwop's `DepthwiseConv2dNative` (dilations computed natively, no
  space_to_batch), dL/dinput and dL/dfilter dwop's backprop ops, whether or
  not `dwop.enable()` is in force. Under XLA (`jit_compile=True`) TensorFlow's
  ops compute the same convolution and its gradients.

  One deliberate difference: with strides and dilations both above 1,
  `tf.nn.depthwise_conv2d` only warns and computes a convolution of the wrong
  size (11x11 SAME, stride 2, rate 2 gives 5x5 instead of 6x6); dwop computes
  the strided, dilated convolution as defined below (as Keras' layers do).

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
      convolution); any positive rates, with any strides.
    name: A name for this operation (optional).

  Returns:
    A 4-D `Tensor` with shape according to `data_format`: for NHWC,
    `[batch, out_height, out_width, in_channels * channel_multiplier]`.

  Raises:
    ValueError: If `padding` is malformed.
    tf.errors.InvalidArgumentError: If the shapes or attributes do not describe
      a valid depthwise convolution.
    dwop.LibraryError: On the first call, if the op library is missing or was
      built against another TensorFlow.
  """
  with tf.name_scope(name or "depthwise") as scope:
    input = tf.convert_to_tensor(input, name="tensor_in")
    filter = tf.convert_to_tensor(filter, name="filter_in")
    return _depthwise(input, filter, strides, padding, data_format, dilations,
                      scope)


def cpu_only():
  """Whether every visible device is a CPU."""
  return all(d.device_type == "CPU" for d in tf.config.list_logical_devices())


def separable_conv2d(input, depthwise_filter, pointwise_filter, strides,  # pylint: disable=redefined-builtin
                     padding, data_format=None, dilations=None, name=None):
  """2-D convolution with separable filters; dwop computes the depthwise part.

  A drop-in for `tf.nn.separable_conv2d` with the same structure: a depthwise
  convolution (as in `dwop.depthwise_conv2d`: forward and gradients by dwop's
  ops, strides with dilations computed as defined) followed by a 1x1
  `tf.nn.conv2d` that mixes channels.

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
    data_format: The data format of `input`: "NHWC" (default) or "NCHW"
      (also where only CPUs are visible, whose `tf.nn.conv2d` refuses it: the
      1x1 convolution then runs in NHWC between transposes).
    dilations: 1-D of size 2. The dilation rate of the depthwise convolution;
      any positive rates, with any strides.
    name: A name for this operation (optional).

  Returns:
    A 4-D `Tensor` with shape according to `data_format`: for NHWC,
    `[batch, out_height, out_width, out_channels]`.

  Raises:
    ValueError: If `padding` is malformed or `pointwise_filter` is not 1x1.
    tf.errors.InvalidArgumentError: If the shapes or attributes do not describe
      a valid depthwise convolution.
    dwop.LibraryError: On the first call, if the op library is missing or was
      built against another TensorFlow.
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
    depthwise = _depthwise(input, depthwise_filter, strides, padding,
                           data_format, dilations, "depthwise")
    if data_format == "NCHW" and cpu_only():
      # TensorFlow's CPU Conv2D (and its gradients) refuse NCHW, where
      # dwop's depthwise op takes it: only the 1x1 mix goes through NHWC.
      mixed = tf.nn.conv2d(tf.transpose(depthwise, [0, 2, 3, 1]),
                           pointwise_filter, [1, 1, 1, 1], padding="VALID")
      return tf.transpose(mixed, [0, 3, 1, 2], name=scope)
    return tf.nn.conv2d(depthwise, pointwise_filter, [1, 1, 1, 1],
                        padding="VALID", data_format=data_format or "NHWC",
                        name=scope)
