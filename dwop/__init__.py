"""dwop: a faster, correct filter gradient for TensorFlow depthwise convolutions."""

from dwop._loader import LibraryError
from dwop._loader import library_path
from dwop._ops import depthwise_conv2d_backprop_filter

__version__ = "0.1.0"

__all__ = [
    "LibraryError",
    "depthwise_conv2d_backprop_filter",
    "library_path",
]
