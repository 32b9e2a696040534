// Must NOT compile: a TensorFlow include in framework-free kernel code.
// .ci/bazel.sh builds //tools:tf_include_probe and expects this error.
#include "tensorflow/core/framework/op.h"
