"""The package surface and the op library's loader (dwop/__init__.py,
dwop/_loader.py): version, __all__, tf.nn's signature, loading once, the
actionable LibraryError for a missing or mismatched library, and the
generated op's attribute checks."""

import inspect
import os
import re
import shlex
import sys
import tempfile
import types
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import tensorflow as tf

import dwop
from dwop import _loader
import testing

_MARKER = b"DWOP_BUILT_AGAINST_TENSORFLOW="


def stamped_copy(directory, version):
  """A copy of the built library whose stamp claims TensorFlow `version`
  (same length as the real one, so the file stays a valid library)."""
  built = os.path.join(os.path.dirname(os.path.abspath(dwop.__file__)),
                       _loader.LIBRARY_NAME)
  with open(built, "rb") as f:
    data = f.read()
  start = data.index(_MARKER) + len(_MARKER)
  end = data.index(b"\0", start)
  fake = version.encode()
  assert len(fake) == end - start, (fake, data[start:end])
  path = os.path.join(directory, "_dwop_ops.so")
  with open(path, "wb") as f:
    f.write(data[:start] + fake + data[end:])
  return path


def other_version():
  """A TensorFlow version of this one's length that is not this one."""
  return re.sub(r"\d", "9", tf.__version__) if tf.__version__[0] != "9" else (
      re.sub(r"\d", "1", tf.__version__))


class PackageTest(absltest.TestCase):

  def test_version(self):
    self.assertRegex(dwop.__version__, r"^\d+\.\d+\.\d+([.-]?\w+)*$")

  def test_all_lists_exactly_the_public_names(self):
    self.assertEqual(len(dwop.__all__), len(set(dwop.__all__)))
    for name in dwop.__all__:
      self.assertTrue(hasattr(dwop, name), name)
    public = {name for name, value in vars(dwop).items()
              if not name.startswith("_") and
              not isinstance(value, types.ModuleType)}
    self.assertLessEqual(public, set(dwop.__all__))
    self.assertLessEqual(
        {"LibraryError", "depthwise_conv2d_backprop_filter", "library_path"},
        set(dwop.__all__))

  def test_star_import_gives_all(self):
    namespace = {}
    exec("from dwop import *", namespace)  # pylint: disable=exec-used
    self.assertEqual(set(namespace) - {"__builtins__"}, set(dwop.__all__))

  def test_signature_is_tf_nn(self):
    ours = inspect.signature(dwop.depthwise_conv2d_backprop_filter)
    theirs = inspect.signature(tf.nn.depthwise_conv2d_backprop_filter)
    self.assertEqual(
        [(p.name, p.default, p.kind) for p in ours.parameters.values()],
        [(p.name, p.default, p.kind) for p in theirs.parameters.values()])

  def test_supported_tensorflow_is_the_one_imported(self):
    # The development environment runs the TensorFlow the release supports.
    self.assertEqual(_loader.SUPPORTED_TENSORFLOW, tf.__version__)

  def test_rebuild_hint_outside_a_source_tree(self):
    with mock.patch.object(_loader, "source_tree", return_value=None):
      hint = _loader.rebuild_hint()
    self.assertIn("--force-reinstall --no-deps <path to the dwop source "
                  "tree>", hint)
    self.assertIn("python -m dwop", hint)

  def test_library_error_is_an_import_error(self):
    self.assertTrue(issubclass(dwop.LibraryError, ImportError))


class LoaderTest(absltest.TestCase):

  def test_loads_once(self):
    module = _loader.load()
    self.assertIs(_loader.load(), module)
    self.assertTrue(hasattr(module, "dwop_depthwise_conv2d_backprop_filter"))

  def test_built_against_this_tensorflow(self):
    self.assertEqual(_loader.built_against(_loader.library_path()),
                     tf.__version__)

  def test_library_path_honours_the_environment(self):
    with mock.patch.dict(os.environ, {_loader.LIBRARY_ENV: "/x/lib.so"}):
      self.assertEqual(dwop.library_path(), "/x/lib.so")
    with mock.patch.dict(os.environ, {_loader.LIBRARY_ENV: ""}):
      self.assertEqual(os.path.dirname(dwop.library_path()),
                       os.path.dirname(os.path.abspath(dwop.__file__)))

  def assertActionableError(self, path, regex):  # pylint: disable=invalid-name
    # _load() is what load() runs the first time; it never caches.
    with mock.patch.dict(os.environ, {_loader.LIBRARY_ENV: path}):
      with self.assertRaises(dwop.LibraryError) as error:
        _loader._load()  # pylint: disable=protected-access
    message = str(error.exception)
    self.assertIn(path, message)
    self.assertRegex(message, regex)
    self.assertIn("make build", message)
    # What to run: the supported TensorFlow, and the pip command that
    # rebuilds against the running one, with this interpreter and this tree.
    self.assertIn(f"supports TensorFlow {_loader.SUPPORTED_TENSORFLOW}",
                  message)
    self.assertIn(f"tensorflow=={_loader.SUPPORTED_TENSORFLOW}", message)
    # The tree is named when the package lives in one (a checkout, an
    # editable install); Bazel's runfiles are not one.
    tree = (shlex.quote(_loader.source_tree()) if _loader.source_tree()
            else "<path to the dwop source tree>")
    self.assertIn(f"{sys.executable} -m pip install 'setuptools>=77' wheel "
                  f"&& {sys.executable} -m pip install --no-build-isolation "
                  f"--force-reinstall --no-deps {tree}", message)

  def test_missing_library(self):
    with tempfile.TemporaryDirectory() as tmp:
      self.assertActionableError(os.path.join(tmp, "missing.so"),
                                 "was not found")

  def test_library_of_another_tensorflow(self):
    with tempfile.TemporaryDirectory() as tmp:
      version = other_version()
      self.assertActionableError(
          stamped_copy(tmp, version),
          rf"built against TensorFlow {re.escape(version)}, but TensorFlow "
          rf"{re.escape(tf.__version__)} is imported")

  def test_file_without_a_stamp(self):
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "_dwop_ops.so")
      with open(path, "wb") as f:
        f.write(b"\x7fELF not a dwop library")
      self.assertActionableError(path, "carries no TensorFlow version stamp")


_CHILD = """
import os, shutil, tempfile, threading
import tensorflow as tf
import dwop
from dwop import _loader
import loader_test

def call():
  x = tf.ones([1, 3, 3, 1])
  return dwop.depthwise_conv2d_backprop_filter(x, [1, 1, 1, 1], x,
                                               [1, 1, 1, 1], "SAME")

def error():
  try:
    call()
  except dwop.LibraryError as e:
    return str(e)
  return None

results = {}
tmp = tempfile.mkdtemp()
os.environ["DWOP_LIBRARY"] = os.path.join(tmp, "missing.so")
results["missing"] = error()
os.environ["DWOP_LIBRARY"] = loader_test.stamped_copy(
    tmp, loader_test.other_version())
results["mismatch"] = error()
shutil.rmtree(tmp)

# Then the real library, loaded by 8 threads at once: once.
del os.environ["DWOP_LIBRARY"]
loads = []
real_load = tf.load_op_library
def counting_load(path):
  loads.append(path)
  return real_load(path)
tf.load_op_library = counting_load
modules = []
threads = [threading.Thread(target=lambda: modules.append(_loader.load()))
           for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
results["loads"] = len(loads)
results["same_module"] = all(m is modules[0] for m in modules)
results["value"] = float(call().numpy().sum())
report(results)
"""


class FreshProcessTest(absltest.TestCase):
  """Through the public API in a fresh interpreter: failures are raised at
  the first call, are not cached, and the library loads once."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    env = {_loader.LIBRARY_ENV: ""}
    cls.results = testing.run_python_json(_CHILD, env=env, timeout=120)

  def test_missing_library(self):
    self.assertRegex(self.results["missing"],
                     r"was not found at .*missing\.so.*make build")

  def test_library_of_another_tensorflow(self):
    self.assertRegex(self.results["mismatch"],
                     rf"built against TensorFlow {other_version()}.*make build")

  def test_loaded_once_then_works(self):
    self.assertEqual(self.results["loads"], 1)
    self.assertTrue(self.results["same_module"])
    self.assertEqual(self.results["value"], 9.0)


def _raw_op(**changes):
  args = dict(input=tf.zeros([2, 9, 9, 4]), filter_sizes=[3, 3, 4, 1],
              out_backprop=tf.zeros([2, 9, 9, 4]), strides=[1, 1, 1, 1],
              padding="SAME")
  args.update(changes)
  return lambda: _loader.load().dwop_depthwise_conv2d_backprop_filter(**args)


_BAD_ATTRS = [
    ("padding", dict(padding="FULL"), r"padding.*FULL"),
    ("data_format", dict(data_format="NCWH"), r"data_format.*NCWH"),
    ("type_int32", dict(input=tf.zeros([2, 9, 9, 4], tf.int32),
                        out_backprop=tf.zeros([2, 9, 9, 4], tf.int32)),
     r"int32"),
    ("filter_sizes_float", dict(filter_sizes=tf.constant([3., 3., 4., 1.])),
     r"float"),
    ("mixed_types", dict(out_backprop=tf.zeros([2, 9, 9, 4], tf.float64)),
     r"double|float64"),
    ("strides_not_a_list", dict(strides=1), r"Expected list for 'strides'"),
    ("strides_not_ints", dict(strides=["a"]), r"Expected int for .*strides"),
]


class GeneratedOpTest(parameterized.TestCase):
  """The OpDef rejects bad attributes and types before the kernel runs:
  InvalidArgumentError or TypeError eagerly, ValueError or TypeError when a
  graph is built."""

  @parameterized.named_parameters(
      [(f"{name}_{mode}", changes, regex, mode)
       for name, changes, regex in _BAD_ATTRS
       for mode in ("eager", "function")])
  def test_bad_attr(self, changes, regex, mode):
    fn = _raw_op(**changes)
    if mode == "function":
      fn = tf.function(fn)
      errors = (ValueError, TypeError)
    else:
      errors = (tf.errors.InvalidArgumentError, TypeError)
    with self.assertRaises(errors) as raised:
      fn()
    self.assertRegex(str(raised.exception), re.compile(regex, re.S))


if __name__ == "__main__":
  absltest.main()
