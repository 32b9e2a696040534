"""Keras 3 depthwise and separable convolutions computed by dwop's ops.

Drop-in subclasses of `keras.layers.DepthwiseConv1D`, `DepthwiseConv2D`,
`SeparableConv1D` and `SeparableConv2D` (TensorFlow backend): same arguments,
weights, `get_config` and results; the depthwise convolution and its
gradients are computed by dwop's ops (by TensorFlow's under XLA), with or
without `dwop.enable()`. Importing this module registers the classes for
serialisation as "dwop>DepthwiseConv1D", "dwop>DepthwiseConv2D",
"dwop>SeparableConv1D" and "dwop>SeparableConv2D", so
`keras.models.load_model` finds them once `dwop.layers` has been imported.

Under XLA (`compile(jit_compile=True)`, which Keras' default
`jit_compile="auto"` chooses on machines with a GPU) the layers still work and
train with TensorFlow's ops: a custom op cannot be compiled."""

import keras

from dwop import _grad
from dwop import _routing

__all__ = ["DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
           "SeparableConv2D"]


def _conv(inputs, depthwise_kernel, pointwise_kernel, strides, padding,
          data_format, dilation_rate):
  """Keras' TensorFlow-backend depthwise/separable convolution, through dwop.

  `_routing.keras_conv`: 1-D as a 2-D convolution over one row, as Keras does;
  channels_first transposed on CPU-only machines; strides and dilations both
  above 1 decomposed. Under XLA, Keras' own backend function (TensorFlow's
  ops, which compile).
  """
  if _grad.in_xla_context():
    if pointwise_kernel is None:
      return _routing.stock_keras("depthwise_conv")(
          inputs, depthwise_kernel, strides, padding, data_format,
          dilation_rate)
    return _routing.stock_keras("separable_conv")(
        inputs, depthwise_kernel, pointwise_kernel, strides, padding,
        data_format, dilation_rate)
  return _routing.keras_conv(inputs, depthwise_kernel, pointwise_kernel,
                             strides, padding, data_format, dilation_rate)


def _check_backend(layer):
  if keras.backend.backend() != "tensorflow":
    raise ValueError(f"{type(layer).__name__} from dwop needs Keras' "
                     "TensorFlow backend; the backend is "
                     f"{keras.backend.backend()!r}.")


def _bias_and_activation(layer, outputs, channels):
  """The tail of Keras' conv layers' call(): bias, then activation."""
  if layer.use_bias:
    if layer.data_format == "channels_last":
      bias_shape = (1,) * (layer.rank + 1) + (channels,)
    else:
      bias_shape = (1, channels) + (1,) * layer.rank
    outputs = keras.ops.add(outputs, keras.ops.reshape(layer.bias, bias_shape))
  if layer.activation is not None:
    return layer.activation(outputs)
  return outputs


def _depthwise_call(layer, inputs):
  """call() of the depthwise layers (1-D and 2-D)."""
  outputs = _conv(inputs, layer.kernel, None, layer.strides, layer.padding,
                  layer.data_format, layer.dilation_rate)
  channels = layer.depth_multiplier * layer._get_input_channel(inputs.shape)  # pylint: disable=protected-access
  return _bias_and_activation(layer, outputs, channels)


def _separable_call(layer, inputs):
  """call() of the separable layers (1-D and 2-D)."""
  outputs = _conv(inputs, layer.depthwise_kernel, layer.pointwise_kernel,
                  layer.strides, layer.padding, layer.data_format,
                  layer.dilation_rate)
  return _bias_and_activation(layer, outputs, layer.filters)


@keras.saving.register_keras_serializable(package="dwop")
class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
  """`keras.layers.DepthwiseConv2D` computed by dwop's ops, gradients included.

  Same arguments, weights, config and outputs as Keras' layer (see its
  documentation): `kernel_size`, `strides`, `padding` ("valid" or "same"),
  `depth_multiplier`, `data_format`, `dilation_rate`, `activation`,
  `use_bias`, the initializers, regularizers and constraints. TensorFlow
  backend only.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    _check_backend(self)

  def call(self, inputs):
    return _depthwise_call(self, inputs)


@keras.saving.register_keras_serializable(package="dwop")
class SeparableConv2D(keras.layers.SeparableConv2D):
  """`keras.layers.SeparableConv2D` whose depthwise part is dwop's ops.

  Same arguments, weights, config and outputs as Keras' layer (see its
  documentation): `filters`, `kernel_size`, `strides`, `padding`,
  `data_format`, `dilation_rate`, `depth_multiplier`, `activation`,
  `use_bias`, the initializers, regularizers and constraints of both
  kernels. The pointwise kernel's gradient is TensorFlow's (a 1x1 conv2d).
  TensorFlow backend only.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    _check_backend(self)

  def call(self, inputs):
    return _separable_call(self, inputs)


@keras.saving.register_keras_serializable(package="dwop")
class DepthwiseConv1D(keras.layers.DepthwiseConv1D):
  """`keras.layers.DepthwiseConv1D` on dwop's ops.

  Same arguments, weights, config and outputs as Keras' layer; computed as a
  2-D depthwise convolution over a single row, as Keras does. TensorFlow
  backend only.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    _check_backend(self)

  def call(self, inputs):
    return _depthwise_call(self, inputs)


@keras.saving.register_keras_serializable(package="dwop")
class SeparableConv1D(keras.layers.SeparableConv1D):
  """`keras.layers.SeparableConv1D` on dwop's ops (depthwise part).

  Same arguments, weights, config and outputs as Keras' layer; the pointwise
  part is TensorFlow's 1x1 conv2d. TensorFlow backend only.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    _check_backend(self)

  def call(self, inputs):
    return _separable_call(self, inputs)
