"""The build flags are declared once (tools/build_flags.bzl) and both builds
use them: the flags the Makefile passes to every compile (`make -n`, nothing
compiled) are the ones Bazel's rules pass, computed from the same file.

TensorFlow-free and compiler-free: needs only make and python3.
"""

import collections
import fnmatch
import glob
import os
import re
import shlex
import subprocess
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BZL = os.path.join(ROOT, "tools", "build_flags.bzl")


def _load_bzl():
  """The names build_flags.bzl defines (Starlark that is also Python), read
  independently of tools/build_flags.py, the Makefile's reader."""
  namespace = {}
  with open(BZL) as f:
    exec(compile(f.read(), BZL, "exec"), namespace)  # noqa: S102
  return namespace


FLAGS = _load_bzl()
# What the Makefile adds to every compile: build mechanics, not flags.
MAKE_MECHANICS = {"-fPIC", "-I.", "-MMD", "-MP", "-c", "-o", "-x", "cu"}


def _kernel_sources():
  return sorted(os.path.relpath(p, ROOT) for p in glob.glob(
      os.path.join(ROOT, "cc", "kernels", "*", "*.cc"))
                if not p.endswith(".cu.cc"))


def _cuda_sources():
  return sorted(os.path.relpath(p, ROOT) for p in glob.glob(
      os.path.join(ROOT, "cc", "kernels", "cuda", "*.cu.cc")))


def bazel_kernel_copts(source):
  """What tools/defs.bzl's kernel_library and kernel_source_libraries pass:
  KERNEL_COPTS + OPT_COPTS, then the source's own KERNEL_SOURCE_COPTS."""
  copts = FLAGS["KERNEL_COPTS"] + FLAGS["OPT_COPTS"]
  relative = os.path.relpath(source, os.path.join("cc", "kernels"))
  for pattern, extra in FLAGS["KERNEL_SOURCE_COPTS"].items():
    if fnmatch.fnmatch(relative, pattern):
      copts = copts + extra
  return copts


def bazel_cuda_copts():
  """What BUILD's cuda_library passes nvcc (tools/defs.bzl's _nvcc_objects):
  CUDA_COPTS + OPT_COPTS and a -gencode per CUDA_GPU_ARCHS entry."""
  return (FLAGS["CUDA_COPTS"] + FLAGS["OPT_COPTS"] +
          [FLAGS["gencode_flag"](a) for a in FLAGS["CUDA_GPU_ARCHS"]])


def make_commands(targets, **variables):
  """{object: compile command words} that `make -n -B` prints for targets,
  in a scratch build directory."""
  with tempfile.TemporaryDirectory() as build:
    args = ["make", "-n", "-B", f"BUILD={build}"] + [
        f"{k}={v}" for k, v in variables.items()] + [
            t.replace("$(BUILD)", build) for t in targets]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
      raise AssertionError(f"{' '.join(args)} failed:\n{proc.stderr}")
    commands = {}
    for line in proc.stdout.splitlines():
      words = shlex.split(line)
      if "-c" in words and "-o" in words:
        obj = words[words.index("-o") + 1].replace(build, "$(BUILD)")
        commands[obj] = words
    return commands


def flags_of(words):
  """The flags of a compile command, without the compiler, its input and
  output, and the Makefile's mechanics."""
  out = []
  skip = False
  for word in words[1:]:
    if skip:
      skip = False
      continue
    if word in ("-o", "-c"):
      skip = True
      continue
    if word not in MAKE_MECHANICS:
      out.append(word)
  return out


def _obj(source, suffix=".o"):
  stem = source[:-len(".cu.cc")] if source.endswith(".cu.cc") else source[:-3]
  return f"$(BUILD)/{stem}{suffix}"


class MakeAgreesWithBazelTest(parameterized.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    targets = [_obj(s) for s in _kernel_sources()] + [
        "$(BUILD)/cc/c_api/dwop_c.o"]
    cls.kernel_commands = make_commands(targets, DWOP_CUDA=0)

  @parameterized.named_parameters(
      (re.sub(r"\W", "_", s), s) for s in _kernel_sources())
  def test_kernel_source(self, source):
    self.assertEqual(flags_of(self.kernel_commands[_obj(source)]),
                     bazel_kernel_copts(source))

  def test_c_api(self):
    # BUILD's libdwop_c.so: copts = KERNEL_COPTS (defines come separately).
    self.assertEqual(
        flags_of(self.kernel_commands["$(BUILD)/cc/c_api/dwop_c.o"]),
        FLAGS["KERNEL_COPTS"] + FLAGS["OPT_COPTS"])

  def test_every_pattern_matches_a_source(self):
    for pattern in FLAGS["KERNEL_SOURCE_COPTS"]:
      self.assertTrue(
          fnmatch.filter([os.path.relpath(s, "cc/kernels")
                          for s in _kernel_sources()], pattern), pattern)

  def test_cuda_sources(self):
    sources = _cuda_sources()
    if not sources:
      self.skipTest("no cc/kernels/cuda/*.cu.cc")
    with tempfile.TemporaryDirectory() as cuda_home:
      # A stand-in toolkit: make -n only prints nvcc's command.
      os.makedirs(os.path.join(cuda_home, "lib64"))
      open(os.path.join(cuda_home, "lib64", "libcudart_static.a"),
           "w").close()
      commands = make_commands(
          [_obj(s, ".cu.o") for s in sources], DWOP_CUDA=1,
          NVCC=os.path.join(cuda_home, "nvcc"), CUDA_HOME=cuda_home)
    for source in sources:
      self.assertEqual(
          collections.Counter(flags_of(commands[_obj(source, ".cu.o")])),
          collections.Counter(bazel_cuda_copts()), source)


class DeclaredOnceTest(absltest.TestCase):
  """Bazel takes its flags from build_flags.bzl instead of restating them."""

  def read(self, path):
    with open(os.path.join(ROOT, path)) as f:
      return f.read()

  def test_build_loads_the_flags(self):
    build = self.read("BUILD")
    self.assertIn('"//tools:build_flags.bzl"', build)
    self.assertRegex(build, r"kernel_source_libraries\(\s*KERNEL_SOURCE_COPTS")
    self.assertIn("copts = CUDA_COPTS + OPT_COPTS", build)
    self.assertIn("gpu_archs = CUDA_GPU_ARCHS", build)
    defs = self.read("tools/defs.bzl")
    self.assertIn('":build_flags.bzl"', defs)
    self.assertIn("KERNEL_COPTS = BUILD_KERNEL_COPTS + OPT_COPTS", defs)

  def test_no_flag_is_restated(self):
    for path in ("BUILD", "tools/defs.bzl", "Makefile"):
      text = self.read(path)
      for flag in ("-mavx", "-mfma", "sm_80", "-fvisibility", "-Wextra",
                   "-std=c++17"):
        self.assertFalse(flag in text, f"{path} restates {flag}")


if __name__ == "__main__":
  absltest.main()
