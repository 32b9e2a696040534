"""pip build: compiles dwop's op library against the installing TensorFlow.

Every pip route works from a fresh virtual environment:

  pip install .                          # TensorFlow from build-system.requires
  pip install -e .                       # the library lands in ./dwop/
  pip install --no-build-isolation .     # against the TensorFlow installed
  pip wheel .

The `build_op_library` command (a sub-command of `build`) runs the Makefile's
`lib` target with the building interpreter, so the library matches the
TensorFlow it is compiled against. Objects go to
build/pip-<platform>-<python>-tf<version>/ under the project root: one
directory per interpreter and TensorFlow version, reused by later builds with
the same pair and never by another. A failed build raises (pip reports it and
fails the install) and removes that directory and any partial library.
Metadata lives in pyproject.toml.

Environment: DWOP_CUDA=0 builds without CUDA even where nvcc is found;
DWOP_BUILD_JOBS sets make's -j (default: the number of CPUs).
"""

import os
import shutil
import subprocess
import sys
import sysconfig

import setuptools
from setuptools import Command
from setuptools import Distribution
from setuptools import setup
from setuptools.command.build import build
from setuptools.errors import ExecError

ROOT = os.path.dirname(os.path.abspath(__file__))

# pyproject.toml's SPDX license string needs setuptools 77. An isolated build
# gets it from build-system.requires; --no-build-isolation uses the
# environment's (Python 3.11's venv still brings setuptools 65).
if tuple(int(p) for p in setuptools.__version__.split(".")[:2]) < (77, 0):
  sys.exit(f"dwop's build needs setuptools>=77, this environment has "
           f"{setuptools.__version__}: pip install 'setuptools>=77' wheel "
           "(or build without --no-build-isolation)")
LIBRARY = os.path.join("dwop", "_dwop_ops.so")
# What a failed build removes from the source tree: setuptools' egg-info
# (rewritten by every build), and build/ unless it was there before (both are
# created before the library is compiled).
_SCRATCH = ["dwop.egg-info"] + (
    [] if os.path.exists(os.path.join(ROOT, "build")) else ["build"])


def _tensorflow_version():
  """The version of the TensorFlow this interpreter imports (or raises)."""
  probe = subprocess.run(
      [sys.executable, "-c",
       "import os; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
       "import tensorflow as tf; print(tf.__version__)"],
      capture_output=True, text=True, check=False)
  if probe.returncode != 0:
    raise ExecError(
        f"dwop's build needs TensorFlow, but {sys.executable} cannot import "
        f"it:\n{probe.stderr.strip()[-2000:]}\n"
        "Install it first (pip install tensorflow==2.21.0) and build with "
        "--no-build-isolation, or let pip install it from "
        "build-system.requires (without --no-build-isolation).")
  return probe.stdout.strip().splitlines()[-1]


def object_directory(tf_version):
  """Where this interpreter's build against `tf_version` keeps its objects."""
  key = (f"pip-{sysconfig.get_platform()}-{sys.implementation.cache_tag}"
         f"-tf{tf_version}")
  return os.path.join(ROOT, "build", key)


class BuildOpLibrary(Command):
  """Compiles dwop/_dwop_ops.so with the Makefile (`make lib`)."""

  description = "compile dwop's TensorFlow op library"
  user_options = []

  def initialize_options(self):
    self.build_lib = None
    # Set by setuptools' editable_wheel: then the library goes into the
    # source package, where the editable install imports dwop from.
    self.editable_mode = False

  def finalize_options(self):
    self.set_undefined_options("build", ("build_lib", "build_lib"))

  def library_path(self):
    base = ROOT if self.editable_mode else self.build_lib
    return os.path.abspath(os.path.join(base, LIBRARY))

  def get_outputs(self):
    return [] if self.editable_mode else [self.library_path()]

  def get_output_mapping(self):
    return {}

  def get_source_files(self):
    return []

  def run(self):
    tf_version = _tensorflow_version()
    objects = object_directory(tf_version)
    library = self.library_path()
    os.makedirs(os.path.dirname(library), exist_ok=True)
    # Always relink: a library left in build/lib by a build against another
    # TensorFlow can be newer than this key's objects, and make would keep it.
    if os.path.exists(library):
      os.remove(library)
    jobs = os.environ.get("DWOP_BUILD_JOBS") or str(os.cpu_count() or 1)
    try:
      # The TensorFlow flags are refreshed on every build (an isolated build
      # environment's paths change each time); the objects are rebuilt only
      # when the version or a flag other than a path changes.
      subprocess.check_call([
          sys.executable, os.path.join(ROOT, "python", "tf_config.py"),
          "--refresh", os.path.join(objects, "tf", "config")])
      subprocess.check_call([
          "make", "-C", ROOT, "lib", f"PY={sys.executable}",
          f"BUILD={objects}", f"LIB={library}", f"-j{jobs}"])
    except (OSError, subprocess.CalledProcessError) as e:
      # Leave nothing behind: no half-built objects, no partial library.
      shutil.rmtree(objects, ignore_errors=True)
      for path in _SCRATCH:
        shutil.rmtree(os.path.join(ROOT, path), ignore_errors=True)
      if os.path.exists(library):
        os.remove(library)
      raise ExecError(
          f"building dwop's op library against TensorFlow {tf_version} "
          f"failed ({e}); see the compiler output above") from e


class Build(build):
  """`build`, with the op library as one more sub-command. (A sub-command of
  its own, not build_py, because setuptools' editable install turns a failing
  custom build_py into a warning.)"""

  sub_commands = build.sub_commands + [("build_op_library", None)]


class BinaryDistribution(Distribution):
  """The wheel carries a compiled library: mark it platform-specific."""

  def has_ext_modules(self):
    return True


# setuptools' PEP 517 backend runs this file as __main__; tests import it.
if __name__ == "__main__":
  setup(cmdclass={"build": Build, "build_op_library": BuildOpLibrary},
        distclass=BinaryDistribution)
