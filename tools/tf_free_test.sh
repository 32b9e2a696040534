#!/usr/bin/env bash
# Fails if the framework-free targets depend on TensorFlow.
# Usage: tf_free_test.sh DEPS  (DEPS: a genquery's output, one label a line)
set -euo pipefail
deps="$1"
if grep -E '^@+local_config_tf//|tensorflow' "$deps"; then
  echo "FAIL: the targets above are TensorFlow; cc/kernels and cc/c_api must not depend on them" >&2
  exit 1
fi
echo "OK: $(wc -l < "$deps") targets in the graph, none of them TensorFlow"
