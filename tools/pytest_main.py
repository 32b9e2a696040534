"""Runs one pytest file as a Bazel test (the pytest_test macro in defs.bzl).

Usage: pytest_main.py TEST_FILE [PYTEST_ARGS...]

Speaks Bazel's test protocol: JUnit XML to $XML_OUTPUT_FILE, `--test_filter`
as pytest's -k, `shard_count` splitting the collected cases round-robin, and
temporary files under $TEST_TMPDIR. Paths in $DWOP_LIBRARY and $DWOP_CABI
(runfiles paths from the BUILD) are made absolute, so that subprocesses the
tests start find the libraries too.
"""

import os
import sys

import pytest

_NO_TESTS_COLLECTED = 5


class _Shard:
  """Keeps every `count`-th collected case, starting at `index`."""

  def __init__(self, index, count):
    self.index = index
    self.count = count

  def pytest_collection_modifyitems(self, config, items):
    deselected = [item for i, item in enumerate(items)
                  if i % self.count != self.index]
    items[:] = items[self.index::self.count]
    config.hook.pytest_deselected(items=deselected)


def main(argv):
  for var in ("DWOP_LIBRARY", "DWOP_CABI"):
    if os.environ.get(var):
      os.environ[var] = os.path.abspath(os.environ[var])
  args = [argv[1], "-p", "no:cacheprovider"] + argv[2:]
  if os.environ.get("XML_OUTPUT_FILE"):
    args.append("--junitxml=" + os.environ["XML_OUTPUT_FILE"])
  if os.environ.get("TEST_TMPDIR"):
    args.append("--basetemp=" + os.path.join(os.environ["TEST_TMPDIR"],
                                             "pytest"))
  if os.environ.get("TESTBRIDGE_TEST_ONLY"):
    args += ["-k", os.environ["TESTBRIDGE_TEST_ONLY"]]
  plugins = []
  shards = int(os.environ.get("TEST_TOTAL_SHARDS", "1"))
  if shards > 1:
    if os.environ.get("TEST_SHARD_STATUS_FILE"):
      open(os.environ["TEST_SHARD_STATUS_FILE"], "w").close()
    plugins.append(_Shard(int(os.environ["TEST_SHARD_INDEX"]), shards))
  code = pytest.main(args, plugins=plugins)
  if code == _NO_TESTS_COLLECTED and shards > 1:
    code = 0  # more shards than cases
  return int(code)


if __name__ == "__main__":
  sys.exit(main(sys.argv))
