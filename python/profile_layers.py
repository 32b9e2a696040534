"""Per-layer timing: dwop's three depthwise ops vs TensorFlow's, float32 NHWC.

    PYTHONPATH=.:python python python/profile_layers.py [--set mnv2,replk]
        [--only NAME,...] [--which dwop,tf] [--reps 7] [--threads 2]
        [--batch 16] [--json PATH]

The depthwise layers of MobileNetV2 and of the RepLKNet-style stack of
python/bench_e2e.py at 128x128 input, timed one op at a time in tf.function
(medians, implementations interleaved). TensorFlow reads
TF_ENABLE_ONEDNN_OPTS at start-up: run once with the default (oneDNN) and
once with TF_ENABLE_ONEDNN_OPTS=0 and `--which tf` for both of its kernels.
"""

import argparse
import json
import time

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import gen_nn_ops

# (name, input rows = cols, channels, filter size, stride, padding)
MNV2 = [("mnv2 3x3s1 64 C32", 64, 32, 3, 1, "SAME"),
        ("mnv2 3x3s2 65 C96", 65, 96, 3, 2, "VALID"),
        ("mnv2 3x3s1 32 C144", 32, 144, 3, 1, "SAME"),
        ("mnv2 3x3s2 33 C144", 33, 144, 3, 2, "VALID"),
        ("mnv2 3x3s1 16 C192", 16, 192, 3, 1, "SAME"),
        ("mnv2 3x3s2 17 C192", 17, 192, 3, 2, "VALID"),
        ("mnv2 3x3s1 8 C384", 8, 384, 3, 1, "SAME"),
        ("mnv2 3x3s1 8 C576", 8, 576, 3, 1, "SAME"),
        ("mnv2 3x3s2 9 C576", 9, 576, 3, 2, "VALID"),
        ("mnv2 3x3s1 4 C960", 4, 960, 3, 1, "SAME")]
REPLK = [("rlk 3x3s2 64 C64", 64, 64, 3, 2, "SAME"),
         ("rlk 31x31 32 C64", 32, 64, 31, 1, "SAME"),
         ("rlk 3x3s2 32 C128", 32, 128, 3, 2, "SAME"),
         ("rlk 29x29 16 C128", 16, 128, 29, 1, "SAME"),
         ("rlk 3x3s2 16 C256", 16, 256, 3, 2, "SAME"),
         ("rlk 27x27 8 C256", 8, 256, 27, 1, "SAME"),
         ("rlk 3x3s2 8 C512", 8, 512, 3, 2, "SAME"),
         ("rlk 13x13 4 C512", 4, 512, 13, 1, "SAME")]
SETS = {"mnv2": MNV2, "replk": REPLK}
OPS = ("fwd", "bwi", "bwf")  # forward, input gradient, filter gradient


def op_functions(ops, x, w, dy, attrs):
  """The three ops of one implementation (`ops` has the raw op functions)."""
  x_sizes = tf.constant(x.shape.as_list())
  w_sizes = tf.constant(w.shape.as_list())
  forward, input_grad, filter_grad = ops
  return (tf.function(lambda: forward(x, w, **attrs)),
          tf.function(lambda: input_grad(x_sizes, w, dy, **attrs)),
          tf.function(lambda: filter_grad(x, w_sizes, dy, **attrs)))


def profile(layer, implementations, batch, reps):
  """Median milliseconds of each (implementation, op) on one layer."""
  _, size, channels, k, stride, padding = layer
  rng = np.random.default_rng(0)
  x = tf.constant(rng.standard_normal((batch, size, size, channels),
                                      np.float32))
  w = tf.constant(rng.standard_normal((k, k, channels, 1), np.float32))
  attrs = dict(strides=[1, stride, stride, 1], padding=padding)
  y = gen_nn_ops.depthwise_conv2d_native(x, w, **attrs)
  dy = tf.constant(rng.standard_normal(y.shape, np.float32))
  fns = {name: op_functions(ops, x, w, dy, attrs)
         for name, ops in implementations.items()}
  for functions in fns.values():  # trace and warm up
    for f in functions:
      f()
  times = {(name, op): [] for name in fns for op in OPS}
  for _ in range(reps):
    for name, functions in fns.items():
      for op, f in zip(OPS, functions):
        start = time.perf_counter()
        f()  # (eager CPU ops are synchronous; .numpy() would add a copy)
        times[(name, op)].append(time.perf_counter() - start)
  return {f"{name}_{op}": 1e3 * float(np.median(t))
          for (name, op), t in times.items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--set", default="mnv2,replk")
  parser.add_argument("--reps", type=int, default=7)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--which", default="dwop,tf")
  parser.add_argument("--json", default="")
  parser.add_argument("--only", default="",
                      help="comma-separated substrings of layer names")
  args = parser.parse_args()
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  from dwop import _loader  # pylint: disable=g-import-not-at-top
  lib = _loader.load()  # the generated op module
  implementations = {
      "dwop": (lib.dwop_depthwise_conv2d_native,
               lib.dwop_depthwise_conv2d_backprop_input,
               lib.dwop_depthwise_conv2d_backprop_filter),
      "tf": (gen_nn_ops.depthwise_conv2d_native,
             gen_nn_ops.depthwise_conv2d_native_backprop_input,
             gen_nn_ops.depthwise_conv2d_native_backprop_filter)}
  implementations = {name: ops for name, ops in implementations.items()
                     if name in args.which.split(",")}
  layers = [layer for name in args.set.split(",") for layer in SETS[name]]
  if args.only:
    layers = [layer for layer in layers
              if any(o in layer[0] for o in args.only.split(","))]
  rows = []
  for layer in layers:
    row = {"name": layer[0],
           **profile(layer, implementations, args.batch, args.reps)}
    rows.append(row)
    print(layer[0], " ".join(f"{k}={v:.3f}" for k, v in row.items()
                             if k != "name"), flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
