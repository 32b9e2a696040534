"""Routing: stock Keras 3 and tf.nn depthwise convolutions onto dwop's ops.

`dwop.enable()` (and `with dwop.enabled():`) call `set_routed(True)`, which
replaces, as module attributes, the functions that stock code looks up at
call time:

* `keras.src.backend.tensorflow.nn.depthwise_conv`, `.separable_conv` and
  `.conv`: what `keras.ops.depthwise_conv` / `separable_conv` / `conv`
  resolve (`keras.src.ops.nn` calls `backend.nn.<name>(...)`, and
  `keras.src.backend.nn` is that very module), so every Keras 3 layer that
  calls them: `DepthwiseConv1D/2D`, `SeparableConv1D/2D`, and
  `Conv1D/Conv2D` with `groups` equal to the input channels (any depth
  multiplier; other convolutions go to Keras' own function untouched);
* `tf.nn.depthwise_conv2d` and `tf.nn.separable_conv2d` (the v2 API module
  and `tf.compat.v2.nn`), and `tf.compat.v1.nn`'s, which take `rate` for
  the dilations too.

The replacements call `dwop.depthwise_conv2d` / `dwop.separable_conv2d`, so
the forward, input gradient and filter gradient are dwop's ops. Inside XLA
(`jit_compile=True`, Keras' "auto" on GPU machines) they call the stock
function they replaced, so the layer compiles with TensorFlow's ops.
`set_routed(False)` puts back the very same function objects.

Because the lookup happens at call time, layers built before `enable()` and
called after it are routed; a `tf.function` traced before keeps its graph
(retrace, e.g. `model.compile(...)` again, to pick the change up).
"""

import importlib
import threading

import tensorflow as tf

from dwop import _decomposed
from dwop import _grad
from dwop import _ops


def _tuple(value, rank):
  if value is None:  # (as TensorFlow takes it: 1)
    value = 1
  if isinstance(value, int):
    return (value,) * rank
  return tuple(int(v) for v in value)


def keras_conv(inputs, depthwise_kernel, pointwise_kernel, strides, padding,
               data_format, dilation_rate):
  """Keras' TensorFlow-backend depthwise/separable convolution, through dwop.

  Follows `keras.src.backend.tensorflow.nn.depthwise_conv`/`separable_conv`
  for 1-D and 2-D inputs: a 1-D convolution is a 2-D one over a single row
  (inputs, kernels, strides and dilations expanded as Keras does);
  channels_first is transposed to channels_last on CPU-only machines, and
  strides and dilations both above 1 are decomposed into padding, a stride-1
  dilated convolution and a strided slice.

  Args:
    inputs: rank-3 or rank-4 tensor in `data_format`.
    depthwise_kernel: `[(KH,) KW, C, M]`.
    pointwise_kernel: `[(1,) 1, C*M, filters]`, or None for a depthwise
      convolution.
    strides: int or tuple, one per spatial dimension.
    padding: "valid" or "same" (any case).
    data_format: "channels_last" or "channels_first" (None: Keras' default).
    dilation_rate: int or tuple, one per spatial dimension (None: 1).

  Returns:
    The output, in `data_format`.
  """
  from keras.src import backend as keras_backend  # pylint: disable=g-import-not-at-top
  data_format = keras_backend.standardize_data_format(data_format)
  inputs = tf.convert_to_tensor(inputs)
  depthwise_kernel = tf.convert_to_tensor(depthwise_kernel)
  if pointwise_kernel is not None:
    pointwise_kernel = tf.convert_to_tensor(pointwise_kernel)
  rank = len(inputs.shape) - 2
  if rank not in (1, 2):
    raise ValueError(f"dwop routes 1-D and 2-D convolutions; inputs have rank "
                     f"{len(inputs.shape)}.")
  # Keras' own checks, with its own errors (ValueError), as stock raises them
  # (the channel check where this Keras has it).
  from keras.src.backend.common import backend_utils  # pylint: disable=g-import-not-at-top
  check_channels = getattr(backend_utils, "check_conv_input_channels", None)
  if check_channels is not None:
    check_channels(inputs, depthwise_kernel, data_format)
  if padding.lower() not in ("valid", "same"):
    raise ValueError(f"`padding` must be 'valid' or 'same' (a causal "
                     f"convolution is padded by its layer); received "
                     f"padding={padding!r}.")
  strides, dilation_rate = _tuple(strides, rank), _tuple(dilation_rate, rank)
  channels_first = data_format == "channels_first"
  if rank == 1:
    inputs = tf.expand_dims(inputs, 2 if channels_first else 1)
    depthwise_kernel = tf.expand_dims(depthwise_kernel, 0)
    if pointwise_kernel is not None:
      pointwise_kernel = tf.expand_dims(pointwise_kernel, 0)
    strides, dilation_rate = (1,) + strides, (1,) + dilation_rate
  outputs = _conv2d(inputs, depthwise_kernel, pointwise_kernel, strides,
                    padding.upper(), channels_first, dilation_rate)
  if rank == 1:
    outputs = tf.squeeze(outputs, [2 if channels_first else 1])
  return outputs


def _conv2d(inputs, depthwise_kernel, pointwise_kernel, strides, padding,
            channels_first, dilation_rate):
  decompose = any(s > 1 for s in strides) and any(d > 1 for d in dilation_rate)
  transpose = channels_first and (decompose or _ops.cpu_only())
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
      tf_strides, tf_format = (1, 1) + strides, "NCHW"
    else:
      tf_strides, tf_format = (1,) + strides + (1,), "NHWC"
    if pointwise_kernel is None:
      outputs = _ops.depthwise_conv2d(inputs, depthwise_kernel, tf_strides,
                                      padding, data_format=tf_format,
                                      dilations=dilation_rate)
    else:
      outputs = _ops.separable_conv2d(inputs, depthwise_kernel,
                                      pointwise_kernel, tf_strides, padding,
                                      data_format=tf_format,
                                      dilations=dilation_rate)
  if transpose:
    outputs = tf.transpose(outputs, [0, 3, 1, 2])
  return outputs


def depthwise_groups(inputs, kernel, data_format):
  """The depth multiplier when a Keras conv is a true depthwise one, else None.

  Keras' grouped conv kernel is `[*spatial, C / groups, filters]`; with
  `groups == C` (and C > 1, where stock Keras runs a grouped convolution) it
  is `[*spatial, 1, C * M]` and output channel `c * M + m` reads input
  channel c only.
  """
  from keras.src import backend as keras_backend  # pylint: disable=g-import-not-at-top
  rank = len(inputs.shape)
  if rank not in (3, 4) or len(kernel.shape) != rank:
    return None
  data_format = keras_backend.standardize_data_format(data_format)
  channels = inputs.shape[1 if data_format == "channels_first" else -1]
  filters = kernel.shape[-1]
  if (channels is None or channels <= 1 or kernel.shape[-2] != 1 or
      filters is None or filters % channels):
    return None
  return filters // channels


def grouped_to_depthwise(kernel, channels, multiplier):
  """`[*spatial, 1, C*M]` (Keras' groups == C kernel) -> `[*spatial, C, M]`.

  Output channel f = c*M + m of the grouped conv is filter[..., c, m] of the
  depthwise one, which is the row-major reshape.
  """
  spatial = list(kernel.shape[:-2])
  return tf.reshape(kernel, spatial + [channels, multiplier])


# --- The replacements.

_KERAS_NN = "keras.src.backend.tensorflow.nn"
_TF_NN = ("tensorflow._api.v2.nn", "tensorflow._api.v2.compat.v2.nn")
_TF_V1_NN = "tensorflow._api.v2.compat.v1.nn"


def _module(name):
  try:
    return importlib.import_module(name)
  except ImportError:
    return None


# (module, attribute) -> the stock function; filled on first use.
_stock = {}


def _stock_fn(module_name, attr):
  return _stock[(module_name, attr)]


def _keras_depthwise_conv(inputs, kernel, strides=1, padding="valid",
                          data_format=None, dilation_rate=1):
  if _grad.in_xla_context():
    return _stock_fn(_KERAS_NN, "depthwise_conv")(
        inputs, kernel, strides, padding, data_format, dilation_rate)
  return keras_conv(inputs, kernel, None, strides, padding, data_format,
                    dilation_rate)


def _keras_separable_conv(inputs, depthwise_kernel, pointwise_kernel,
                          strides=1, padding="valid", data_format=None,
                          dilation_rate=1):
  if _grad.in_xla_context():
    return _stock_fn(_KERAS_NN, "separable_conv")(
        inputs, depthwise_kernel, pointwise_kernel, strides, padding,
        data_format, dilation_rate)
  return keras_conv(inputs, depthwise_kernel, pointwise_kernel, strides,
                    padding, data_format, dilation_rate)


def _keras_conv(inputs, kernel, strides=1, padding="valid", data_format=None,
                dilation_rate=1):
  stock = _stock_fn(_KERAS_NN, "conv")
  if _grad.in_xla_context():
    return stock(inputs, kernel, strides, padding, data_format, dilation_rate)
  inputs = tf.convert_to_tensor(inputs)
  kernel = tf.convert_to_tensor(kernel)
  multiplier = depthwise_groups(inputs, kernel, data_format)
  if multiplier is None:
    return stock(inputs, kernel, strides, padding, data_format, dilation_rate)
  from keras.src import backend as keras_backend  # pylint: disable=g-import-not-at-top
  channels_first = (keras_backend.standardize_data_format(data_format) ==
                    "channels_first")
  channels = inputs.shape[1 if channels_first else -1]
  depthwise_kernel = grouped_to_depthwise(kernel, channels, multiplier)
  return keras_conv(inputs, depthwise_kernel, None, strides, padding,
                    data_format, dilation_rate)


def _tf_depthwise_conv2d(module_name):
  def depthwise_conv2d(input, filter, strides, padding, data_format=None,  # pylint: disable=redefined-builtin
                       dilations=None, name=None):
    fn = (_stock_fn(module_name, "depthwise_conv2d")
          if _grad.in_xla_context() else _ops.depthwise_conv2d)
    return fn(input, filter, strides, padding, data_format=data_format,
              dilations=dilations, name=name)
  depthwise_conv2d.__doc__ = _ops.depthwise_conv2d.__doc__
  return depthwise_conv2d


def _tf_separable_conv2d(module_name):
  def separable_conv2d(input, depthwise_filter, pointwise_filter, strides,  # pylint: disable=redefined-builtin
                       padding, data_format=None, dilations=None, name=None):
    fn = (_stock_fn(module_name, "separable_conv2d")
          if _grad.in_xla_context() else _ops.separable_conv2d)
    return fn(input, depthwise_filter, pointwise_filter, strides, padding,
              data_format=data_format, dilations=dilations, name=name)
  separable_conv2d.__doc__ = _ops.separable_conv2d.__doc__
  return separable_conv2d


def _v1_dilations(rate, dilations):
  """The dilations of a `tf.compat.v1.nn` call, which may name them `rate`."""
  if rate is not None and dilations is not None:
    raise ValueError("Cannot specify both 'dilations' and 'rate'.")
  return dilations if rate is None else rate


def _tf_v1_depthwise_conv2d(routed):
  """`tf.compat.v1.nn.depthwise_conv2d`'s signature over `routed` (a v2 one)."""
  def depthwise_conv2d(input, filter, strides, padding, rate=None, name=None,  # pylint: disable=redefined-builtin
                       data_format=None, dilations=None):
    return routed(input, filter, strides, padding, data_format=data_format,
                  dilations=_v1_dilations(rate, dilations), name=name)
  depthwise_conv2d.__doc__ = _ops.depthwise_conv2d.__doc__
  return depthwise_conv2d


def _tf_v1_separable_conv2d(routed):
  """`tf.compat.v1.nn.separable_conv2d`'s signature over `routed` (a v2 one)."""
  def separable_conv2d(input, depthwise_filter, pointwise_filter, strides,  # pylint: disable=redefined-builtin
                       padding, rate=None, name=None, data_format=None,
                       dilations=None):
    return routed(input, depthwise_filter, pointwise_filter, strides, padding,
                  data_format=data_format,
                  dilations=_v1_dilations(rate, dilations), name=name)
  separable_conv2d.__doc__ = _ops.separable_conv2d.__doc__
  return separable_conv2d


def _routes():
  """{(module name, attribute): dwop's replacement} for importable modules."""
  routes = {}
  seen = []
  for module_name in _TF_NN:
    module = _module(module_name)
    if module is not None and all(module is not m for m in seen):
      seen.append(module)  # one entry per module object, however named
      routes[(module_name, "depthwise_conv2d")] = _tf_depthwise_conv2d(
          module_name)
      routes[(module_name, "separable_conv2d")] = _tf_separable_conv2d(
          module_name)
  if _module(_TF_V1_NN) is not None:  # (its signatures: `rate` too)
    # (Inside XLA the v2 replacements call the stock v1 functions, which
    # take `dilations` as well.)
    routes[(_TF_V1_NN, "depthwise_conv2d")] = _tf_v1_depthwise_conv2d(
        _tf_depthwise_conv2d(_TF_V1_NN))
    routes[(_TF_V1_NN, "separable_conv2d")] = _tf_v1_separable_conv2d(
        _tf_separable_conv2d(_TF_V1_NN))
  keras_nn = _module(_KERAS_NN)
  if keras_nn is not None:
    routes[(_KERAS_NN, "depthwise_conv")] = _keras_depthwise_conv
    routes[(_KERAS_NN, "separable_conv")] = _keras_separable_conv
    routes[(_KERAS_NN, "conv")] = _keras_conv
  return routes


_lock = threading.RLock()
_ours = {}


def set_routed(on):
  """Puts dwop's functions in place (on) or the stock ones back (off).

  Idempotent. Modules are imported on first use (Keras only if it is
  installed); the stock functions are remembered the first time and put
  back as the very same objects.
  """
  with _lock:
    if on and not _ours:
      _ours.update(_routes())
    for (module_name, attr), ours in _ours.items():
      module = _module(module_name)
      current = getattr(module, attr)
      if on and current is not ours:
        _stock[(module_name, attr)] = current
        setattr(module, attr, ours)
      elif not on and current is ours:
        setattr(module, attr, _stock[(module_name, attr)])


def is_routed():
  """Whether every routed call site holds dwop's function right now."""
  with _lock:
    return bool(_ours) and all(
        getattr(_module(m), a) is ours for (m, a), ours in _ours.items())


def stock_keras(attr):
  """Keras' own TensorFlow-backend `attr` (e.g. "depthwise_conv"), routed or
  not."""
  with _lock:
    key = (_KERAS_NN, attr)
    return _stock[key] if key in _stock else getattr(_module(_KERAS_NN), attr)


def routed_functions():
  """{"module.attribute": (stock function, dwop's function)} (for tests)."""
  with _lock:
    if not _ours:
      _ours.update(_routes())
    return {f"{m}.{a}": (_stock.get((m, a), getattr(_module(m), a)), ours)
            for (m, a), ours in _ours.items()}
