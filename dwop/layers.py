"""Keras 3 depthwise and separable convolutions computed by dwop's ops.

Drop-in subclasses of `keras.layers.DepthwiseConv2D` and
`keras.layers.SeparableConv2D` (TensorFlow backend): same arguments, weights,
`get_config` and results; the depthwise convolution and its gradients are
computed by dwop's ops (by TensorFlow's under XLA). Importing this module
registers both classes for serialisation as "dwop>DepthwiseConv2D" and
"dwop>SeparableConv2D", so `keras.models.load_model` finds them once
`dwop.layers` has been imported.

Under XLA (`compile(jit_compile=True)`, which Keras' default
`jit_compile="auto"` chooses on machines with a GPU) the layers still work and
train with TensorFlow's ops: a custom op cannot be compiled.
"""

import keras
import tensorflow as tf

from dwop import _decomposed
from dwop import _ops

__all__ = ["DepthwiseConv2D", "SeparableConv2D"]


def _cpu_only():
  return all(d.device_type == "CPU" for d in tf.config.list_logical_devices())


def _conv(inputs, depthwise_kernel, pointwise_kernel, strides, padding,
          data_format, dilation_rate):
  """Keras' TensorFlow-backend depthwise/separable convolution, through dwop.

  Follows `keras.src.backend.tensorflow.nn.depthwise_conv`/`separable_conv`
  for 2-D inputs: channels_first is transposed to channels_last on CPU-only
  machines (TensorFlow's CPU kernels are NHWC only), and strides and
  dilations both above 1 are decomposed into padding, a stride-1 dilated
  convolution and a strided slice.
  """
  inputs = tf.convert_to_tensor(inputs)
  depthwise_kernel = tf.convert_to_tensor(depthwise_kernel)
  if pointwise_kernel is not None:
    pointwise_kernel = tf.convert_to_tensor(pointwise_kernel)
  padding = padding.upper()
  strides, dilation_rate = tuple(strides), tuple(dilation_rate)
  decompose = any(s > 1 for s in strides) and any(d > 1 for d in dilation_rate)
  channels_first = data_format == "channels_first"
  transpose = channels_first and (decompose or _cpu_only())
  if transpose:
    inputs = tf.transpose(inputs, [0, 2, 3, 1])
  if decompose:
    outputs = _decomposed.depthwise_nhwc_decomposed(inputs, depthwise_kernel,
                                              strides, padding, dilation_rate,
                                              _ops.depthwise_conv2d)
    if pointwise_kernel is not None:
      outputs = tf.nn.conv2d(outputs, pointwise_kernel, [1, 1, 1, 1], "VALID")
  else:
    if channels_first and not transpose:
      tf_strides, data_format = (1, 1) + strides, "NCHW"
    else:
      tf_strides, data_format = (1,) + strides + (1,), "NHWC"
    if pointwise_kernel is None:
      outputs = _ops.depthwise_conv2d(inputs, depthwise_kernel, tf_strides,
                                      padding, data_format=data_format,
                                      dilations=dilation_rate)
    else:
      outputs = _ops.separable_conv2d(inputs, depthwise_kernel,
                                      pointwise_kernel, tf_strides, padding,
                                      data_format=data_format,
                                      dilations=dilation_rate)
  if transpose:
    outputs = tf.transpose(outputs, [0, 3, 1, 2])
  return outputs


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
    outputs = _conv(inputs, self.kernel, None, self.strides, self.padding,
                    self.data_format, self.dilation_rate)
    channels = self.depth_multiplier * self._get_input_channel(inputs.shape)
    return _bias_and_activation(self, outputs, channels)


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
    outputs = _conv(inputs, self.depthwise_kernel, self.pointwise_kernel,
                    self.strides, self.padding, self.data_format,
                    self.dilation_rate)
    return _bias_and_activation(self, outputs, self.filters)
