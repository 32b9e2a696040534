"""Per-layer timing: dwop's three depthwise ops vs TensorFlow's, float32 NHWC.

  PYTHONPATH=.:python python python/profile_layers.py [--set mnv2,replk] [--reps 7]
Run once with TF_ENABLE_ONEDNN_OPTS=0 and once with the default for both TF kernels.
"""
import argparse, os, time, json
import numpy as np
import tensorflow as tf

# (name, H=W in, C, K, stride, padding)
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


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--set", default="mnv2,replk")
  ap.add_argument("--reps", type=int, default=7)
  ap.add_argument("--threads", type=int, default=2)
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--which", default="dwop,tf")
  ap.add_argument("--json", default="")
  ap.add_argument("--only", default="", help="comma-separated substrings of layer names")
  a = ap.parse_args()
  tf.config.threading.set_intra_op_parallelism_threads(a.threads)
  tf.config.threading.set_inter_op_parallelism_threads(a.threads)
  import dwop
  lib = dwop._loader.load()
  from tensorflow.python.ops import gen_nn_ops as g
  shapes = []
  if "mnv2" in a.set: shapes += MNV2
  if "replk" in a.set: shapes += REPLK
  if a.only:
    shapes = [sh for sh in shapes if any(o in sh[0] for o in a.only.split(","))]
  which = a.which.split(",")
  rows = []
  for name, H, C, K, s, pad in shapes:
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((a.batch, H, H, C), np.float32))
    w = tf.constant(rng.standard_normal((K, K, C, 1), np.float32))
    attrs = dict(strides=[1, s, s, 1], padding=pad)
    y = g.depthwise_conv2d_native(x, w, **attrs)
    dy = tf.constant(rng.standard_normal(y.shape, np.float32))
    xs, ws = tf.constant(x.shape.as_list()), tf.constant(w.shape.as_list())
    fns = {}
    if "dwop" in which:
      fns["dwop"] = (tf.function(lambda: lib.dwop_depthwise_conv2d_native(x, w, **attrs)),
                     tf.function(lambda: lib.dwop_depthwise_conv2d_backprop_input(xs, w, dy, **attrs)),
                     tf.function(lambda: lib.dwop_depthwise_conv2d_backprop_filter(x, ws, dy, **attrs)))
    if "tf" in which:
      fns["tf"] = (tf.function(lambda: g.depthwise_conv2d_native(x, w, **attrs)),
                   tf.function(lambda: g.depthwise_conv2d_native_backprop_input(xs, w, dy, **attrs)),
                   tf.function(lambda: g.depthwise_conv2d_native_backprop_filter(x, ws, dy, **attrs)))
    res = {}
    for k, fs in fns.items():
      for f in fs: f()
    times = {(k, i): [] for k in fns for i in range(3)}
    for _ in range(a.reps):
      for k, fs in fns.items():
        for i, f in enumerate(fs):
          t = time.perf_counter(); f().numpy(); times[(k, i)].append(time.perf_counter() - t)
    oh = y.shape[1]
    taps = K * K  # approx (ignores border)
    row = {"name": name}
    for (k, i), v in times.items():
      row[f"{k}_{'fwd bwi bwf'.split()[i]}"] = 1e3 * float(np.median(v))
    rows.append(row)
    print(name, " ".join(f"{kk}={vv:.3f}" for kk, vv in row.items() if kk != "name"), flush=True)
  if a.json:
    json.dump(rows, open(a.json, "w"), indent=1)

if __name__ == "__main__":
  main()
