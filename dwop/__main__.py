"""`python -m dwop`: what this dwop is, what it runs on, and whether it works.

Prints dwop's version and library; the TensorFlow it was built against and
the one running; the CPU kernels' instruction set and thread count; whether
CUDA kernels are compiled in and a GPU is visible. Then checks every dwop op
against its tf.nn reference on a few small problems, on the CPU and (when
CUDA is compiled in and a GPU is visible) on the GPU. Exits 0 when everything
loads and agrees, 1 otherwise.
"""

import argparse
import ctypes
import os
import sys
import time

_DESCRIPTION = """\
Reports dwop's build and environment, then self-checks every dwop op against
TensorFlow's tf.nn reference on a few small problems (a couple of seconds).

Reported: dwop's version and op library; the TensorFlow the library was built
against and the one running (they must be equal); the CPU kernels'
instruction set (DWOP_CPU_ISA can force a lower one) and thread count; whether
CUDA kernels are compiled in and whether TensorFlow sees a GPU.

Exit status: 0 when the library loads and every check agrees with TensorFlow,
1 when anything fails (the output says what to run), 2 on a usage error.
Start here when dwop misbehaves, and include the output in a bug report."""


def _parse(argv):
  parser = argparse.ArgumentParser(
      prog="python -m dwop", description=_DESCRIPTION,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--no-check", action="store_true",
                      help="only report; skip the self-check")
  parser.add_argument("--cpu-only", action="store_true",
                      help="self-check on the CPU only, even if a GPU is "
                      "visible")
  return parser.parse_args(argv)


def _line(label, value):
  print(f"{label + ':':<26}{value}")


# --- The self-check table: (name, dwop callable, tf reference, cases).
# Each case builds the arguments of both callables from NumPy arrays; an entry
# whose dwop function does not exist (yet) is skipped, so new ops are checked
# as soon as dwop exports them.

# (input NHWC, filter HWCM, strides, padding). Equal strides and no
# dilations: TensorFlow's own kernels reject or ignore the rest (README, "Why
# dwop"), so they cannot serve as the reference there.
_GEOMETRIES = [
    ((2, 7, 7, 3), (3, 3, 3, 1), (1, 1, 1, 1), "SAME"),
    ((1, 9, 8, 4), (3, 2, 4, 2), (1, 2, 2, 1), "VALID"),
    ((2, 6, 5, 2), (5, 5, 2, 1), (1, 2, 2, 1), "SAME"),
    ((1, 5, 5, 2), (3, 3, 2, 1), (1, 1, 1, 1),
     [[0, 0], [2, 1], [0, 2], [0, 0]]),
]


def _forward_args(tf, rng, dtype, geometry):
  x_shape, w_shape, strides, padding = geometry
  x = tf.constant(rng.standard_normal(x_shape), dtype)
  w = tf.constant(rng.standard_normal(w_shape), dtype)
  return dict(input=x, filter=w, strides=list(strides), padding=padding)


def _out_shape(tf, geometry):
  x_shape, w_shape, strides, padding = geometry
  x = tf.zeros(x_shape)
  w = tf.zeros(w_shape)
  return tf.nn.depthwise_conv2d(x, w, list(strides), padding).shape


def _filter_grad_args(tf, rng, dtype, geometry):
  x_shape, w_shape, strides, padding = geometry
  x = tf.constant(rng.standard_normal(x_shape), dtype)
  dy = tf.constant(rng.standard_normal(_out_shape(tf, geometry)), dtype)
  return dict(input=x, filter_sizes=list(w_shape), out_backprop=dy,
              strides=list(strides), padding=padding)


def _input_grad_args(tf, rng, dtype, geometry):
  x_shape, w_shape, strides, padding = geometry
  w = tf.constant(rng.standard_normal(w_shape), dtype)
  dy = tf.constant(rng.standard_normal(_out_shape(tf, geometry)), dtype)
  return dict(input_sizes=list(x_shape), filter=w, out_backprop=dy,
              strides=list(strides), padding=padding)


def checks(tf):
  """The self-check table: (name, dwop callable or None, tf reference,
  argument builder)."""
  import dwop  # pylint: disable=g-import-not-at-top
  return [
      ("depthwise_conv2d_backprop_filter",
       getattr(dwop, "depthwise_conv2d_backprop_filter", None),
       tf.nn.depthwise_conv2d_backprop_filter, _filter_grad_args),
      ("depthwise_conv2d_backprop_input",
       getattr(dwop, "depthwise_conv2d_backprop_input", None),
       tf.nn.depthwise_conv2d_backprop_input, _input_grad_args),
      ("depthwise_conv2d_native",
       getattr(dwop, "depthwise_conv2d_native", None),
       tf.compat.v1.nn.depthwise_conv2d_native, _forward_args),
  ]


def _compare(tf, ours, theirs, args):
  import numpy as np  # pylint: disable=g-import-not-at-top
  got = np.asarray(ours(**args), np.float64)
  want = np.asarray(theirs(**args), np.float64)
  if got.shape != want.shape:
    return f"shape {got.shape}, expected {want.shape}"
  scale = max(1.0, float(np.abs(want).max(initial=0.0)))
  error = float(np.abs(got - want).max(initial=0.0)) / scale
  return None if error <= 1e-4 else f"relative error {error:.2e} > 1e-4"


def self_check(tf, devices):
  """Runs the table on `devices`; returns the number of failures."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  failures = 0
  for name, ours, theirs, build in checks(tf):
    if ours is None:
      print(f"  {name:<34}skipped (not in this dwop)")
      continue
    for device in devices:
      problems = []
      start = time.perf_counter()
      for dtype in (tf.float32, tf.float64):
        rng = np.random.default_rng(0)
        for geometry in _GEOMETRIES:
          try:
            with tf.device(device):
              problem = _compare(tf, ours, theirs, build(tf, rng, dtype,
                                                         geometry))
          except Exception as e:  # pylint: disable=broad-except
            problem = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
          if problem:
            problems.append(f"{dtype.name} {geometry}: {problem}")
      took = (time.perf_counter() - start) * 1e3
      cases = 2 * len(_GEOMETRIES)
      if problems:
        failures += 1
        print(f"  {name:<34}{device}: FAILED {len(problems)} of {cases}")
        for problem in problems:
          print(f"      {problem}")
      else:
        print(f"  {name:<34}{device}: ok ({cases} cases, {took:.0f} ms)")
  return failures


def _library_info(path):
  """(cpu isa, cuda built) read from the loaded op library."""
  try:
    library = ctypes.CDLL(path)
  except OSError as e:
    return f"unknown ({e})", None
  try:
    isa = library.dwop_op_library_cpu_isa
    cuda = library.dwop_op_library_cuda_built
  except AttributeError:
    return "unknown (library predates dwop_op_library_cpu_isa)", None
  isa.restype = ctypes.c_char_p
  cuda.restype = ctypes.c_int
  return isa().decode(), bool(cuda())


def _threads(tf):
  configured = tf.config.threading.get_intra_op_parallelism_threads()
  if configured:
    return f"{configured} (tf.config.threading intra-op)"
  try:
    cpus = len(os.sched_getaffinity(0))
  except AttributeError:
    cpus = os.cpu_count()
  return f"{cpus} (TensorFlow's intra-op pool: one per available CPU)"


def main(argv=None):
  args = _parse(sys.argv[1:] if argv is None else argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  start = time.perf_counter()
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import dwop  # pylint: disable=g-import-not-at-top
  from dwop import _loader  # pylint: disable=g-import-not-at-top

  _line("dwop", f"{dwop.__version__} ({os.path.dirname(dwop.__file__)})")
  path = dwop.library_path()
  _line("op library", path)
  built = (_loader.built_against(path) if os.path.isfile(path) else None)
  _line("built against TensorFlow", built or "unknown")
  _line("running TensorFlow",
        f"{tf.__version__} ({os.path.dirname(tf.__file__)})")
  _line("supported TensorFlow", _loader.SUPPORTED_TENSORFLOW)
  try:
    dwop.load_library()
  except dwop.LibraryError as e:
    print(f"\nFAILED: the op library does not load.\n{e}")
    return 1
  isa, cuda_built = _library_info(path)
  forced = os.environ.get("DWOP_CPU_ISA")
  _line("CPU kernels", isa + (f" (DWOP_CPU_ISA={forced})" if forced else ""))
  _line("CPU threads", _threads(tf))
  _line("CUDA kernels", {True: "compiled in", False: "not compiled in",
                         None: "unknown"}[cuda_built])
  gpus = tf.config.list_physical_devices("GPU")
  _line("GPU visible", ", ".join(g.name for g in gpus) if gpus else
        "no" + ("" if tf.test.is_built_with_cuda() else
                " (this TensorFlow is built without CUDA)"))
  if args.no_check:
    return 0

  devices = ["/CPU:0"]
  if gpus and cuda_built and not args.cpu_only:
    devices.append("/GPU:0")
  print(f"\nself-check against tf.nn (float32, float64; "
        f"{len(_GEOMETRIES)} geometries):")
  failures = self_check(tf, devices)
  took = time.perf_counter() - start
  if failures:
    print(f"\nFAILED: {failures} check(s) disagree with TensorFlow "
          f"({took:.1f} s). Report this output with the failing case.")
    return 1
  print(f"\nall checks passed ({took:.1f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
