"""dwop: faster, correct depthwise convolutions for TensorFlow.

Routes to dwop's ops:

* `dwop.depthwise_conv2d_native`, `dwop.depthwise_conv2d_backprop_input`,
  `dwop.depthwise_conv2d_backprop_filter`: the three ops themselves (tf.nn's
  signatures), each with its gradient (dwop's ops, to any order).
* `dwop.depthwise_conv2d` / `dwop.separable_conv2d`: tf.nn's convolutions,
  forward and gradients by dwop's ops.
* `dwop.enable()` / `dwop.disable()` / `with dwop.enabled():`: dwop as the
  gradient of TensorFlow's own `DepthwiseConv2dNative` (stock tf.nn and Keras).
* `dwop.layers.DepthwiseConv2D` / `dwop.layers.SeparableConv2D`: Keras layers
  (imported on first use of `dwop.layers`; importing it registers them for
  `keras.models.load_model`).
"""

import importlib

from dwop._loader import LibraryError
from dwop._loader import load as _load
from dwop._loader import library_path
from dwop._ops import depthwise_conv2d
from dwop._ops import depthwise_conv2d_backprop_filter
from dwop._ops import depthwise_conv2d_backprop_input
from dwop._ops import depthwise_conv2d_native
from dwop._ops import separable_conv2d
from dwop._switch import disable
from dwop._switch import enable
from dwop._switch import enabled
from dwop._switch import is_enabled

__version__ = "0.1.0"

__all__ = [
    "LibraryError",
    "depthwise_conv2d",
    "depthwise_conv2d_backprop_filter",
    "depthwise_conv2d_backprop_input",
    "depthwise_conv2d_native",
    "disable",
    "enable",
    "enabled",
    "is_enabled",
    "library_path",
    "load_library",
    "separable_conv2d",
]


def load_library():
  """Loads dwop's op library now (it otherwise loads on first use).

  Needed before `tf.saved_model.load` of a model whose graphs contain dwop's
  op (a model built with dwop's layers or `dwop.depthwise_conv2d` holds
  dwop's ops): TensorFlow refuses to load a graph with an op
  type it does not know.

  Raises:
    dwop.LibraryError: If the library is missing or was built for another
      TensorFlow.
  """
  _load()


def __getattr__(name):
  # dwop.layers imports Keras, so only when it is asked for.
  if name == "layers":
    return importlib.import_module("dwop.layers")
  raise AttributeError(f"module 'dwop' has no attribute {name!r}")
