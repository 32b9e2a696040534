"""Packaging: every pip route gives a working dwop, and the metadata is whole.

Fast checks read the packaging files. The routes (marked `slow`; deselect
with `pytest -m "not slow"`) copy the source tree once, then from fresh
virtual environments run

  pip install --no-build-isolation <copy>
  pip install --no-build-isolation -e <copy>
  pip wheel --no-build-isolation <copy>, and install the wheel elsewhere
  pip install <copy> and pip install -e <copy> (isolated builds: they fetch
      tensorflow==2.21.0 from the package index, so they run only with
      DWOP_TEST_PIP_INDEX=1)

and `python -m dwop` in each, from outside the tree. The fresh environments
see this interpreter's site-packages through a .pth file: that is
"TensorFlow already installed", without a 600 MB download per environment.
All routes share the copy's object directory, so only the first compiles
the kernels. CUDA is off (DWOP_CUDA=0): `make build` covers it.
"""

import importlib.util
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
import tomllib
import zipfile

from absl.testing import absltest
import pytest

import testing

ROOT = testing.ROOT
TF_PIN = re.compile(r"^tensorflow==([0-9][0-9A-Za-z.]*)$")


def _pyproject():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def _setup_module():
  spec = importlib.util.spec_from_file_location(
      "dwop_setup", os.path.join(ROOT, "setup.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # does not call setup(): not __main__
  return module


def _loader_constant():
  # Read without importing dwop (and TensorFlow).
  with open(os.path.join(ROOT, "dwop", "_loader.py")) as f:
    return re.search(r'^SUPPORTED_TENSORFLOW = "([^"]+)"', f.read(),
                     re.M).group(1)


class MetadataTest(absltest.TestCase):
  """The packaging files agree with each other and are complete."""

  def test_one_tensorflow_version_everywhere(self):
    project = _pyproject()
    pins = {
        "build-system.requires": [r for r in project["build-system"]
                                  ["requires"] if TF_PIN.match(r)],
        "project.dependencies": [r for r in project["project"]
                                 ["dependencies"] if TF_PIN.match(r)],
    }
    with open(os.path.join(ROOT, "requirements.txt")) as f:
      pins["requirements.txt"] = [line.strip() for line in f
                                  if TF_PIN.match(line.strip())]
    for where, found in pins.items():
      self.assertLen(found, 1, where)
    versions = {TF_PIN.match(found[0]).group(1) for found in pins.values()}
    versions.add(_loader_constant())
    self.assertLen(versions, 1, pins)

  def test_project_metadata(self):
    project = _pyproject()["project"]
    self.assertEqual(project["requires-python"], ">=3.11")
    self.assertEqual(project["license"], "Apache-2.0")  # SPDX, not a table
    self.assertEqual(project["license-files"], ["LICENSE"])
    self.assertEqual(project["readme"]["file"], "README.md")
    classifiers = project["classifiers"]
    self.assertIn("Programming Language :: Python :: 3.11", classifiers)
    self.assertIn("Operating System :: POSIX :: Linux", classifiers)
    # No invented homes: URL fields are left out rather than guessed.
    self.assertNotIn("urls", project)

  def test_license_is_the_apache_2_text(self):
    with open(os.path.join(ROOT, "LICENSE")) as f:
      text = f.read()
    self.assertIn("Apache License\n                           Version 2.0, "
                  "January 2004", text)
    self.assertIn("END OF TERMS AND CONDITIONS", text)
    self.assertIn("APPENDIX: How to apply the Apache License", text)

  def test_slow_marker_is_registered(self):
    markers = _pyproject()["tool"]["pytest"]["ini_options"]["markers"]
    self.assertTrue(any(m.startswith("slow:") for m in markers), markers)

  def test_changelog_records_this_version(self):
    with open(os.path.join(ROOT, "CHANGELOG.md")) as f:
      changelog = f.read()
    self.assertIn("## [Unreleased]", changelog)
    self.assertIn("## [0.1.0]", changelog)

  def test_no_fixed_temporary_paths(self):
    for name in ("setup.py", "Makefile", "pyproject.toml"):
      with open(os.path.join(ROOT, name)) as f:
        self.assertNotIn("/tmp", f.read(), name)

  def test_objects_are_keyed_by_interpreter_and_tensorflow(self):
    setup = _setup_module()
    a, b = setup.object_directory("2.21.0"), setup.object_directory("2.20.0")
    self.assertNotEqual(a, b)
    for directory in (a, b):
      self.assertEqual(os.path.dirname(directory), os.path.join(ROOT, "build"))
      self.assertIn(sys.implementation.cache_tag, directory)

  def test_tf_flags_signature_ignores_paths_only(self):
    spec = importlib.util.spec_from_file_location(
        "tf_config", os.path.join(ROOT, "python", "tf_config.py"))
    tf_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tf_config)
    def flags(version, prefix, abi="1"):
      return {"version": version,
              "cflags": f"-isystem{prefix}/include "
                        f"-D_GLIBCXX_USE_CXX11_ABI={abi} --std=c++17",
              "lflags": f"-L{prefix} -l:libtensorflow_framework.so.2"}
    same = tf_config.signature(flags("2.21.0", "/a"))
    self.assertEqual(same, tf_config.signature(flags("2.21.0", "/b")))
    self.assertNotEqual(same, tf_config.signature(flags("2.20.0", "/a")))
    self.assertNotEqual(same, tf_config.signature(flags("2.21.0", "/a", "0")))

  def test_op_library_glue_does_not_use_the_emulator(self):
    # cc/kernels/cuda/emulator.cc is a test tool: the Makefile leaves it out
    # of the op library, which is only right while no glue calls it.
    for name in os.listdir(os.path.join(ROOT, "cc", "tf")):
      with open(os.path.join(ROOT, "cc", "tf", name)) as f:
        self.assertNotIn("EmulateCuda", f.read(), name)


# --- The pip routes.

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "DWOP_CUDA": "0",
             "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def copy_source_tree(destination):
  """Copies the files git would commit (tracked and untracked, not ignored):
  a clone of the working tree, without its build outputs."""
  files = subprocess.run(
      ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
      check=True, capture_output=True).stdout.decode().split("\0")
  for name in filter(None, files):
    source = os.path.join(ROOT, name)
    if os.path.islink(source) or not os.path.isfile(source):
      continue
    target = os.path.join(destination, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(source, target)
  return destination


def tree_files(root):
  return sorted(os.path.relpath(os.path.join(d, f), root)
                for d, _, fs in os.walk(root) for f in fs)


def fresh_venv(path):
  """A new virtual environment that sees this interpreter's packages
  (TensorFlow, pip, setuptools) after its own; returns its python."""
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", path],
                 check=True)
  python = os.path.join(path, "bin", "python")
  purelib = subprocess.run(
      [python, "-c", "import sysconfig; print(sysconfig.get_paths()"
       "['purelib'])"], check=True, capture_output=True,
      text=True).stdout.strip()
  with open(os.path.join(purelib, "_dwop_test_parent.pth"), "w") as f:
    f.write("\n".join(site.getsitepackages()) + "\n")
  return python


def run(args, cwd, env=None, timeout=1800, check=True):
  result = subprocess.run(
      args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
      env=dict({k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
               **QUIET_ENV, **(env or {})))
  if check and result.returncode != 0:
    raise AssertionError(f"{args} failed ({result.returncode}):\n"
                         f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
  return result


def pip(python, *args, **kwargs):
  return run([python, "-m", "pip", *args], **kwargs)


def info(python, cwd):
  """`python -m dwop` and where dwop and its library were imported from."""
  check = run([python, "-m", "dwop"], cwd=cwd, check=False, timeout=600)
  where = run([python, "-c", "import dwop; print(dwop.__file__); "
               "print(dwop.library_path())"], cwd=cwd, timeout=600)
  return check, where.stdout.split()


@pytest.mark.slow
class PipRoutesTest(absltest.TestCase):
  """--no-build-isolation install, editable install and wheel, from one copy
  of the source tree (the kernels compile once)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(prefix="dwop-install-test-")
    cls.src = copy_source_tree(os.path.join(cls.tmp, "src"))
    cls.original_files = tree_files(cls.src)
    cls.outside = os.path.join(cls.tmp, "elsewhere")
    os.makedirs(cls.outside)
    cls.results = {}

    install = fresh_venv(os.path.join(cls.tmp, "install"))
    pip(install, "install", "--no-build-isolation", "--no-deps", cls.src,
        cwd=cls.outside)
    cls.results["install"] = info(install, cls.outside)

    editable = fresh_venv(os.path.join(cls.tmp, "editable"))
    pip(editable, "install", "--no-build-isolation", "--no-deps", "-e",
        cls.src, cwd=cls.outside)
    cls.results["editable"] = info(editable, cls.outside)

    dist = os.path.join(cls.tmp, "dist")
    pip(install, "wheel", "--no-build-isolation", "--no-deps", "-w", dist,
        cls.src, cwd=cls.outside)
    (wheel,) = os.listdir(dist)
    cls.wheel = os.path.join(dist, wheel)
    other = fresh_venv(os.path.join(cls.tmp, "wheel"))
    pip(other, "install", "--no-deps", cls.wheel, cwd=cls.outside)
    cls.results["wheel"] = info(other, cls.outside)

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.tmp, ignore_errors=True)
    super().tearDownClass()

  def assertWorks(self, route, package_dir):  # pylint: disable=invalid-name
    check, (module, library) = self.results[route]
    self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
    self.assertIn("depthwise_conv2d_backprop_filter", check.stdout)
    self.assertIn("all checks passed", check.stdout)
    self.assertEqual(os.path.dirname(module), package_dir)
    self.assertEqual(library, os.path.join(package_dir, "_dwop_ops.so"))
    self.assertTrue(os.path.isfile(library))

  def site_dir(self, route):
    """Where `route`'s prefix under self.tmp installs the dwop package."""
    return os.path.join(self.tmp, route, "lib",
                        f"python{sys.version_info[0]}.{sys.version_info[1]}",
                        "site-packages", "dwop")

  def test_install(self):
    self.assertWorks("install", self.site_dir("install"))

  def test_editable_install_loads_the_library_from_the_source_tree(self):
    self.assertWorks("editable", os.path.join(self.src, "dwop"))

  def test_wheel_installs_elsewhere(self):
    self.assertWorks("wheel", self.site_dir("wheel"))

  def test_python_m_dwop_reports_the_build(self):
    check, _ = self.results["wheel"]
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.assertRegex(check.stdout, rf"built against TensorFlow: *"
                     rf"{re.escape(tf.__version__)}")
    self.assertRegex(check.stdout, r"CPU kernels: *(avx512|avx2|generic)")
    self.assertRegex(check.stdout, r"CUDA kernels: *not compiled in")

  def test_wheel_contents(self):
    with zipfile.ZipFile(self.wheel) as wheel:
      names = wheel.namelist()
      (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
      text = wheel.read(metadata).decode()
    package = sorted(n for n in names if ".dist-info/" not in n)
    # The package's sources and its op library, nothing else (no build
    # objects, no test tools such as the CUDA emulator).
    sources = sorted(
        "dwop/" + name for name in os.listdir(os.path.join(ROOT, "dwop"))
        if name.endswith(".py"))
    self.assertEqual(package, sorted(sources + ["dwop/_dwop_ops.so"]))
    self.assertTrue(any(n.endswith(".dist-info/licenses/LICENSE")
                        for n in names), names)
    headers, _, body = text.partition("\n\n")
    self.assertIn("Requires-Python: >=3.11", headers)
    self.assertIn("License-Expression: Apache-2.0", headers)
    self.assertIn("License-File: LICENSE", headers)
    self.assertIn("Description-Content-Type: text/markdown", headers)
    self.assertIn("Requires-Dist: tensorflow==", headers)
    self.assertIn("Classifier: Programming Language :: Python :: 3.11",
                  headers)
    self.assertNotIn("Home-page", headers)
    self.assertTrue(body.startswith("# dwop"), body[:80])
    self.assertRegex(os.path.basename(self.wheel),
                     r"^dwop-.*-cp3\d+-cp3\d+-linux_x86_64\.whl$")

  def test_wheel_library_has_no_test_only_code(self):
    with zipfile.ZipFile(self.wheel) as wheel:
      library = wheel.extract("dwop/_dwop_ops.so", self.tmp)
    symbols = run(["nm", "-C", library], cwd=self.tmp).stdout
    self.assertIn("dwop_op_library_cpu_isa", symbols)
    self.assertNotIn("Emulat", symbols)

  def test_objects_live_in_one_directory_per_interpreter_and_tensorflow(self):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    keyed = [d for d in os.listdir(os.path.join(self.src, "build"))
             if d.startswith("pip-")]
    tag = sys.implementation.cache_tag
    self.assertEqual(keyed, [f"pip-{_platform()}-{tag}-tf{tf.__version__}"])

  def test_source_tree_gains_only_build_outputs(self):
    added = set(tree_files(self.src)) - set(self.original_files)
    allowed = re.compile(r"^(build/|dwop\.egg-info/|dwop/_dwop_ops\.so$)")
    self.assertEqual(sorted(a for a in added if not allowed.match(a)), [])


def _platform():
  import sysconfig  # pylint: disable=g-import-not-at-top
  return sysconfig.get_platform()


@pytest.mark.slow
class FailedBuildTest(absltest.TestCase):
  """A build that fails fails the install loudly and leaves the tree as it
  was: no objects, no partial library, no egg-info."""

  def test_failed_compile(self):
    with tempfile.TemporaryDirectory() as tmp:
      src = copy_source_tree(os.path.join(tmp, "src"))
      before = tree_files(src)
      python = fresh_venv(os.path.join(tmp, "venv"))
      for editable in ([], ["-e"]):
        result = pip(python, "install", "--no-build-isolation", "--no-deps",
                     *editable, src, cwd=tmp, check=False,
                     env={"CXX": "false"})
        output = result.stdout + result.stderr
        self.assertNotEqual(result.returncode, 0, output)
        self.assertIn("building dwop's op library against TensorFlow", output)
        self.assertEqual(tree_files(src), before)
        probe = run([python, "-c", "import dwop"], cwd=tmp, check=False)
        self.assertNotEqual(probe.returncode, 0, "dwop got installed")


@pytest.mark.slow
@absltest.skipUnless(os.environ.get("DWOP_TEST_PIP_INDEX") == "1",
                     "isolated builds download tensorflow from the package "
                     "index: set DWOP_TEST_PIP_INDEX=1")
class IsolatedBuildTest(absltest.TestCase):
  """`pip install <tree>` and `pip install -e <tree>` with build isolation:
  pip installs build-system.requires (tensorflow==2.21.0) for the build."""

  def test_isolated_install_and_editable(self):
    with tempfile.TemporaryDirectory() as tmp:
      src = copy_source_tree(os.path.join(tmp, "src"))
      outside = os.path.join(tmp, "elsewhere")
      os.makedirs(outside)
      for name, editable in (("install", []), ("editable", ["-e"])):
        python = fresh_venv(os.path.join(tmp, name))
        pip(python, "install", "--no-deps", *editable, src, cwd=outside)
        check, (module, library) = info(python, outside)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("all checks passed", check.stdout)
        self.assertTrue(os.path.isfile(library), library)
        if editable:
          self.assertEqual(os.path.dirname(module), os.path.join(src, "dwop"))


if __name__ == "__main__":
  absltest.main()
