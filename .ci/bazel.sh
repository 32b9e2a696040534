#!/usr/bin/env bash
# The Bazel build and tests (README, "Building with Bazel"), offline.
#
# Installs Debian's bazel-bootstrap when no Bazel is found, then:
#   1. bazel build //...           op library, C ABI, package, test targets
#   2. a TensorFlow include in kernel code must fail to compile
#   3. bazel test //...            the suites in tests/ and the build's checks
#   4. --config=cuda: both libraries with the CUDA kernels (nvcc) load and
#      compute, when nvcc is on the PATH
# and closes with one line, "bazel: N passed, N failed, N skipped", counting
# the test cases (not targets) that ran.
#
# Environment (all optional):
#   BAZEL             Bazel to run (default: Debian's bazel-4, else bazel)
#   BAZEL_CONFIGS     --config values (default: debian with Debian's Bazel)
#   DWOP_BAZEL_DISK_CACHE  where compiled actions are kept across clones
#                     (default: ~/.cache/bazel/_dwop_disk_cache, beside
#                     Bazel's own output bases in ~/.cache/bazel)
#   DWOP_BAZEL_CUDA   1: always run step 4, 0: never (default: when nvcc is
#                     found)
#   PYTHON_BIN_PATH   the interpreter with TensorFlow (default .venv/bin/python,
#                     created with `make venv` when missing)
# With CI set, the clone's output base is removed at the end (the disk cache
# stays for the next clone); otherwise the Bazel server is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "=== bazel: $*"; }

# --- Bazel: Debian's bazel-bootstrap, whose bazel-bootstrap-source package
# holds the stand-in rule repositories that --config=debian points at.
MOCK_REPOS=/usr/src/bazel-bootstrap/mock_repos
install=""
if [[ -z "${BAZEL:-}" ]]; then
  if command -v bazel-4 >/dev/null; then
    [[ -d "$MOCK_REPOS" ]] || install=1
  elif ! command -v bazel >/dev/null; then
    install=1
  fi
fi
if [[ -n "$install" ]]; then
  step "installing bazel-bootstrap"
  sudo=""; [[ "$(id -u)" == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
      bazel-bootstrap bazel-bootstrap-source >/dev/null
fi
if [[ -z "${BAZEL:-}" ]]; then
  # Debian's `bazel` wrapper wants a binary named after .bazelversion;
  # its binary is bazel-4.
  BAZEL="$(command -v bazel-4 || command -v bazel)"
fi
if [[ -z "${BAZEL_CONFIGS+set}" ]]; then
  BAZEL_CONFIGS=""
  [[ "$(basename "$BAZEL")" == bazel-4 && -d "$MOCK_REPOS" ]] &&
      BAZEL_CONFIGS="debian"
fi
configs=(--config=ci)
for c in $BAZEL_CONFIGS; do configs+=("--config=$c"); done

# --- The interpreter with TensorFlow (the WORKSPACE's default is .venv).
if [[ -z "${PYTHON_BIN_PATH:-}" && ! -x .venv/bin/python ]]; then
  step "creating .venv"
  make venv
fi

disk_cache="${DWOP_BAZEL_DISK_CACHE:-$HOME/.cache/bazel/_dwop_disk_cache}"
bazel() {
  "$BAZEL" "$@"
}
since="$(mktemp)"  # test results newer than this are this run's
cleanup() {
  rm -f "$since"
  if [[ -n "${CI:-}" ]]; then
    bazel clean --expunge >/dev/null 2>&1 || true
  else
    bazel shutdown >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
opts=("${configs[@]}" --disk_cache="$disk_cache")
start=$SECONDS

step "$BAZEL ${configs[*]}, disk cache $disk_cache"
step "build //..."
bazel build "${opts[@]}" //...

step "a TensorFlow include in kernel code fails to compile"
if probe="$(bazel build "${opts[@]}" //tools:tf_include_probe 2>&1)"; then
  echo "FAIL: //tools:tf_include_probe compiled: cc/kernels can see TensorFlow" >&2
  exit 1
elif ! grep -q "tensorflow/core/framework/op.h: No such file" <<<"$probe"; then
  echo "$probe" >&2
  echo "FAIL: //tools:tf_include_probe failed for another reason" >&2
  exit 1
fi
echo "OK: tensorflow/core/framework/op.h: No such file or directory"

step "test //..."
touch "$since"
bazel test "${opts[@]}" //...

nvcc="$(command -v "${NVCC:-nvcc}" || true)"
cuda="${DWOP_BAZEL_CUDA:-auto}"
if [[ "$cuda" == 1 || ( "$cuda" == auto && -n "$nvcc" ) ]]; then
  # Builds both libraries with the CUDA kernels and loads them (no GPU here).
  step "test --config=cuda //tools:bazel_wiring_test (nvcc: ${nvcc:-none})"
  bazel test "${opts[@]}" --config=cuda //tools:bazel_wiring_test
fi

step "done in $((SECONDS - start)) s"
# The closing line: the test cases that ran, from each test's JUnit XML.
out="$(bazel info "${opts[@]}" output_path 2>/dev/null)"
find "$out"/*/testlogs -name test.xml -newer "$since" -print0 | xargs -0 \
    "${PYTHON_BIN_PATH:-.venv/bin/python}" tools/junit_summary.py bazel
