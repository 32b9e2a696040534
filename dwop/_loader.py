"""Finds and loads dwop's op library once, refusing a mismatched build."""

import os
import re
import shlex
import sys
import threading

import tensorflow as tf

LIBRARY_NAME = "_dwop_ops.so"
# Environment variable naming an explicit library path (e.g. a Bazel build).
LIBRARY_ENV = "DWOP_LIBRARY"
# The build stamps this marker, followed by the TensorFlow version it was
# compiled against, into the library (cc/tf/ops.cc); reading it before loading
# avoids dlopen-ing a library whose C++ ABI does not match.
_VERSION_MARKER = re.compile(
    rb"DWOP_BUILT_AGAINST_TENSORFLOW=([0-9A-Za-z.\-+]+)\0")

# The TensorFlow this release is built and tested against: pyproject.toml's
# build-system.requires and dependencies, and requirements.txt, pin it too
# (tests/install_test.py checks that they agree).
SUPPORTED_TENSORFLOW = "2.21.0"


def source_tree():
  """The dwop source tree this package lives in (an editable install or a
  checkout on sys.path), or None for an installed copy."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  markers = ("setup.py", "pyproject.toml", "Makefile")
  if all(os.path.isfile(os.path.join(root, m)) for m in markers):
    return root
  return None


def rebuild_hint():
  """What to run: the supported TensorFlow, and the pip command that
  rebuilds the library against the TensorFlow this interpreter imports."""
  source = source_tree()
  target = shlex.quote(source) if source else "<path to the dwop source tree>"
  pip = f"{shlex.quote(sys.executable)} -m pip install"
  hint = (
      f"This dwop supports TensorFlow {SUPPORTED_TENSORFLOW} (this "
      f"interpreter imports TensorFlow {tf.__version__}). Either install "
      f"that TensorFlow and reinstall dwop (`{pip} tensorflow=="
      f"{SUPPORTED_TENSORFLOW} && {pip} --force-reinstall --no-deps "
      f"{target}`), or rebuild dwop against the running TensorFlow: "
      f"`{pip} 'setuptools>=77' wheel && {pip} --no-build-isolation "
      f"--force-reinstall --no-deps {target}`.")
  if source:
    hint += (f" In the source tree itself, `make build` rebuilds "
             f"{os.path.join(source, 'dwop', LIBRARY_NAME)} for its .venv.")
  else:
    hint += (" (`make build` in a dwop source tree builds the library for "
             "its own .venv.)")
  hint += " `python -m dwop` checks the result."
  return hint


_lock = threading.Lock()
_module = None


class LibraryError(ImportError):
  """dwop's op library is missing or was built for another TensorFlow."""


def library_path():
  """The op library dwop loads.

  Returns:
    Its path (str): `$DWOP_LIBRARY` when set, else `_dwop_ops.so` next to the
    package.
  """
  explicit = os.environ.get(LIBRARY_ENV)
  if explicit:
    return explicit
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), LIBRARY_NAME)


def built_against(path):
  """Returns the TensorFlow version stamped into the library at `path`."""
  with open(path, "rb") as f:
    match = _VERSION_MARKER.search(f.read())
  return match.group(1).decode() if match else None


def _load():
  path = library_path()
  if not os.path.isfile(path):
    raise LibraryError(f"dwop's op library was not found at {path}. "
                       + rebuild_hint())
  version = built_against(path)
  if version is None:
    raise LibraryError(
        f"{path} carries no TensorFlow version stamp: it was not built by "
        "dwop's Makefile, setup.py or Bazel rules. " + rebuild_hint())
  if version != tf.__version__:
    raise LibraryError(
        f"dwop's op library {path} was built against TensorFlow {version}, "
        f"but TensorFlow {tf.__version__} is imported. " + rebuild_hint())
  return tf.load_op_library(path)


# Autograph would otherwise try (and warn) to convert the file checks when the
# first call happens inside a tf.function.
@tf.autograph.experimental.do_not_convert
def load():
  """Loads the op library on first use and returns its generated module."""
  global _module
  if _module is None:
    with _lock:
      if _module is None:
        _module = _load()
  return _module
