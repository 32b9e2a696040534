#!/usr/bin/env bash
# Stands in for Bazel's coverage report generator under --config=debian:
# Debian's bazel-bootstrap does not ship it and cannot download it.
echo "bazel coverage needs @remote_coverage_tools, which --config=debian lacks" >&2
exit 1
