"""Prints one 'N passed, N failed, N skipped' line for JUnit XML files.

Usage: junit_summary.py LABEL TEST_XML...  (.ci/bazel.sh: the cases that
`bazel test` ran, counted from the XML each test target wrote).
"""

import sys
import xml.etree.ElementTree as ET


def main(label, paths):
  count = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
  for path in paths:
    for suite in ET.parse(path).getroot().iter("testsuite"):
      for key in count:
        count[key] += int(suite.get(key) or 0)
  failed = count["failures"] + count["errors"]
  passed = count["tests"] - failed - count["skipped"]
  print(f"{label}: {passed} passed, {failed} failed, "
        f"{count['skipped']} skipped")
  return 1 if failed or not paths else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1], sys.argv[2:]))
