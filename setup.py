"""pip build: compiles the op library against the installing interpreter's TensorFlow.

`pip install --no-build-isolation .` into any environment that has TensorFlow
runs the Makefile's `lib` target with that interpreter (so the library matches
the TensorFlow it will run with) and ships the result inside the package.
Metadata lives in pyproject.toml.
"""

import os
import subprocess
import sys

from setuptools import Distribution
from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))


class BuildPyWithLibrary(build_py):
  """build_py that also builds dwop/_dwop_ops.so into the build directory."""

  def run(self):
    super().run()
    build_temp = os.path.abspath(os.path.join(self.build_lib, "..", "dwop-obj"))
    library = os.path.abspath(os.path.join(self.build_lib, "dwop",
                                           "_dwop_ops.so"))
    os.makedirs(os.path.dirname(library), exist_ok=True)
    subprocess.check_call([
        "make", "-C", ROOT, "lib", f"PY={sys.executable}",
        f"BUILD={build_temp}", f"LIB={library}",
        f"-j{os.cpu_count() or 1}"
    ])


class BinaryDistribution(Distribution):
  """The wheel carries a compiled library: mark it platform-specific."""

  def has_ext_modules(self):
    return True


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
