"""End-to-end benchmark: Keras training step, stock TensorFlow vs dwop.enable().

For each model, two `tf.function` training steps (forward, loss, gradient,
SGD update) over the same model are traced: one with dwop disabled (stock
TensorFlow and Keras: DepthwiseConv2dNative* ops, and grouped Conv2D for
Keras' ConvNeXt), one under `dwop.enable()` (every depthwise convolution on
dwop's three ops). After warm-up the two are called alternately and the
medians of the step times are compared.

Models (weights=None: nothing is downloaded): keras.applications
MobileNetV2, EfficientNetB0, ConvNeXtTiny (stock Keras, whose depthwise
layers are Conv2D(groups=channels)), and a RepLKNet-style stack (depthwise
31/29/27/13 kernels with pointwise convolutions). On request (--models),
models the default run does not list, whose goal is only not to be slower
(users bring their own): MobileNet (v1), MobileNetV3Small and EfficientNetV2B0
(DepthwiseConv2D), Xception (SeparableConv2D).

    python python/bench_e2e.py                    # batch 16, 128x128, 2 threads
    python python/bench_e2e.py --quick            # smoke run: tiny sizes
    python python/bench_e2e.py --models replknet --reps 5 --out bench_e2e
    python python/bench_e2e.py --models mobilenet,xception   # extra models

Writes the table to stdout and results.json and e2e.png to --out. A
PyTorch CPU column (same architectures, torchvision's where available)
is added when `import torch` works.
"""

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import time

MODELS = ("mobilenetv2", "efficientnetb0", "convnexttiny", "replknet")
# keras.applications constructors of the models run only on request (goal:
# not slower).
EXTRA_MODELS = {"mobilenet": "MobileNet",
                "mobilenetv3small": "MobileNetV3Small",
                "efficientnetv2b0": "EfficientNetV2B0",
                "xception": "Xception"}
GOALS = {"mobilenetv2": 1.25, "efficientnetb0": 1.0, "convnexttiny": 4.0,
         "replknet": 8.0, **dict.fromkeys(EXTRA_MODELS, 1.0)}
# keras.applications constructors of every model but the RepLKNet stack.
KERAS_APPS = {"mobilenetv2": "MobileNetV2", "efficientnetb0": "EfficientNetB0",
              "convnexttiny": "ConvNeXtTiny", **EXTRA_MODELS}

# RepLKNet-style stages: (channels, depthwise kernel, blocks).
REPLK_STAGES = ((64, 31, 2), (128, 29, 2), (256, 27, 2), (512, 13, 1))


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--models", default=",".join(MODELS),
                 help="comma-separated list of " + ",".join(MODELS) +
                 " (the default) and " + ",".join(EXTRA_MODELS))
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--size", type=int, default=128, help="input height = width")
  p.add_argument("--classes", type=int, default=10)
  p.add_argument("--threads", type=int, default=2,
                 help="TensorFlow intra- and inter-op threads (and torch's)")
  p.add_argument("--warmup", type=int, default=2,
                 help="untimed steps per variant after tracing")
  p.add_argument("--reps", type=int, default=5,
                 help="timed steps per variant (interleaved)")
  p.add_argument("--out", default="bench_e2e", help="folder for JSON and PNG")
  p.add_argument("--quick", action="store_true",
                 help="smoke run: batch 2, 32x32, 1 warm-up, 1 rep, narrow "
                      "RepLKNet (unless set explicitly)")
  p.add_argument("--no-torch", action="store_true",
                 help="leave out the PyTorch column even if torch imports")
  args = p.parse_args(argv)
  if args.quick:
    defaults = {"batch": 16, "size": 128, "warmup": 2, "reps": 5}
    quick = {"batch": 2, "size": 32, "warmup": 1, "reps": 1}
    for key, value in quick.items():
      if getattr(args, key) == defaults[key]:
        setattr(args, key, value)
  args.models = [m.strip().lower() for m in args.models.split(",") if m]
  known = MODELS + tuple(EXTRA_MODELS)
  unknown = sorted(set(args.models) - set(known))
  if unknown:
    p.error(f"unknown models {unknown}; choose from {known}")
  return args


# --- Keras / TensorFlow.


def replknet(keras, size, classes, quick=False):
  """A RepLKNet-style network: large depthwise kernels between 1x1 convs."""
  layers = keras.layers
  stages = REPLK_STAGES
  if quick:
    stages = tuple((c // 8, k, 1) for c, k, _ in stages)
  inputs = keras.Input((size, size, 3))
  h = layers.Conv2D(stages[0][0], 3, strides=2, padding="same",
                    use_bias=False)(inputs)
  h = layers.BatchNormalization()(h)
  h = layers.ReLU()(h)
  h = layers.DepthwiseConv2D(3, strides=2, padding="same", use_bias=False)(h)
  h = layers.BatchNormalization()(h)
  for stage, (channels, kernel, blocks) in enumerate(stages):
    if stage:
      h = layers.Conv2D(channels, 1, use_bias=False)(h)
      h = layers.BatchNormalization()(h)
      h = layers.ReLU()(h)
      h = layers.DepthwiseConv2D(3, strides=2, padding="same",
                                 use_bias=False)(h)
      h = layers.BatchNormalization()(h)
    for _ in range(blocks):
      # Large-kernel block: 1x1, depthwise KxK, 1x1, residual.
      y = layers.BatchNormalization()(h)
      y = layers.Conv2D(channels, 1, activation="relu")(y)
      y = layers.DepthwiseConv2D(kernel, padding="same", use_bias=False)(y)
      y = layers.BatchNormalization()(y)
      y = layers.ReLU()(y)
      y = layers.Conv2D(channels, 1)(y)
      h = layers.Add()([h, y])
      # FFN block: 1x1 expand, 1x1 project, residual.
      y = layers.BatchNormalization()(h)
      y = layers.Conv2D(channels * 2, 1, activation="gelu")(y)
      y = layers.Conv2D(channels, 1)(y)
      h = layers.Add()([h, y])
  h = layers.GlobalAveragePooling2D()(h)
  outputs = layers.Dense(classes)(h)
  return keras.Model(inputs, outputs, name="replknet_style")


def build_keras(keras, name, size, classes, quick):
  shape = (size, size, 3)
  apps = keras.applications
  if name in KERAS_APPS:
    return getattr(apps, KERAS_APPS[name])(
        input_shape=shape, weights=None, classes=classes,
        classifier_activation=None)
  return replknet(keras, size, classes, quick)


def graph_ops(concrete):
  """Op types of a concrete function's graph and every function it calls."""
  graph_def = concrete.graph.as_graph_def()
  types = {node.op for node in graph_def.node}
  for function in graph_def.library.function:
    types |= {node.op for node in function.node_def}
  return types


def conv_ops(types):
  return sorted(t for t in types if "Conv" in t or t.startswith("Dwop>"))


def train_step_fn(tf, keras, model):
  """A traced SGD training step over `model` (its own optimizer)."""
  optimizer = keras.optimizers.SGD(1e-4)
  optimizer.build(model.trainable_variables)
  loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

  @tf.function(jit_compile=False)
  def step(x, y):
    with tf.GradientTape() as tape:
      logits = model(x, training=True)
      loss = loss_fn(y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return loss

  return step


def bench_keras(args, name):
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  import dwop  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(0)
  model = build_keras(keras, name, args.size, args.classes, args.quick)
  rng = np.random.default_rng(0)
  x = tf.constant(rng.standard_normal((args.batch, args.size, args.size, 3)),
                  tf.float32)
  y = tf.constant(rng.integers(0, args.classes, args.batch), tf.int32)

  dwop.disable()
  stock = train_step_fn(tf, keras, model)
  stock_graph = stock.get_concrete_function(x, y)
  with dwop.enabled():
    ours = train_step_fn(tf, keras, model)
    ours_graph = ours.get_concrete_function(x, y)
  stock_ops, our_ops = graph_ops(stock_graph), graph_ops(ours_graph)

  def timed(fn):
    start = time.perf_counter()
    fn(x, y).numpy()
    return time.perf_counter() - start

  for _ in range(args.warmup):
    timed(stock_graph)
    timed(ours_graph)
  times = {"stock": [], "dwop": []}
  for _ in range(args.reps):
    times["stock"].append(timed(stock_graph))
    times["dwop"].append(timed(ours_graph))
  medians = {k: statistics.median(v) for k, v in times.items()}
  return {
      "params": int(model.count_params()),
      "times_s": times,
      "median_s": medians,
      "speedup": medians["stock"] / medians["dwop"],
      "stock_ops": conv_ops(stock_ops),
      "dwop_ops": conv_ops(our_ops),
  }


# --- PyTorch (optional column).


def torch_model(torch, name, classes, quick):
  nn = torch.nn
  if name != "replknet":
    import torchvision  # pylint: disable=g-import-not-at-top
    models = {"mobilenetv2": torchvision.models.mobilenet_v2,
              "efficientnetb0": torchvision.models.efficientnet_b0,
              "convnexttiny": torchvision.models.convnext_tiny,
              "mobilenetv3small": torchvision.models.mobilenet_v3_small}
    if name not in models:
      raise ValueError(f"torchvision has no {name}")
    return models[name](weights=None, num_classes=classes)
  stages = REPLK_STAGES
  if quick:
    stages = tuple((c // 8, k, 1) for c, k, _ in stages)

  class Residual(nn.Module):

    def __init__(self, body):
      super().__init__()
      self.body = body

    def forward(self, x):
      return x + self.body(x)

  def dw(c, k, stride=1):
    return nn.Conv2d(c, c, k, stride, k // 2, groups=c, bias=False)

  c0 = stages[0][0]
  mods = [nn.Conv2d(3, c0, 3, 2, 1, bias=False), nn.BatchNorm2d(c0),
          nn.ReLU(), dw(c0, 3, 2), nn.BatchNorm2d(c0)]
  prev = c0
  for stage, (c, k, blocks) in enumerate(stages):
    if stage:
      mods += [nn.Conv2d(prev, c, 1, bias=False), nn.BatchNorm2d(c),
               nn.ReLU(), dw(c, 3, 2), nn.BatchNorm2d(c)]
    for _ in range(blocks):
      mods.append(Residual(nn.Sequential(
          nn.BatchNorm2d(c), nn.Conv2d(c, c, 1), nn.ReLU(), dw(c, k),
          nn.BatchNorm2d(c), nn.ReLU(), nn.Conv2d(c, c, 1))))
      mods.append(Residual(nn.Sequential(
          nn.BatchNorm2d(c), nn.Conv2d(c, 2 * c, 1), nn.GELU(),
          nn.Conv2d(2 * c, c, 1))))
    prev = c
  mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(prev, classes)]
  return nn.Sequential(*mods)


def bench_torch(args, name):
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  model = torch_model(torch, name, args.classes, args.quick)
  model.train()
  optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
  x = torch.randn(args.batch, 3, args.size, args.size)
  y = torch.randint(0, args.classes, (args.batch,))
  loss_fn = torch.nn.CrossEntropyLoss()

  def step():
    start = time.perf_counter()
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    loss.item()
    return time.perf_counter() - start

  for _ in range(args.warmup):
    step()
  times = [step() for _ in range(args.reps)]
  return {"times_s": times, "median_s": statistics.median(times)}


def torch_available(args):
  if args.no_torch:
    return False
  return importlib.util.find_spec("torch") is not None


# --- Report.


def table(results, with_torch):
  head = ["model", "stock ms", "dwop ms", "speed-up", "goal"]
  if with_torch:
    head.append("torch ms")
  rows = [head]
  for name, r in results.items():
    if "error" in r:
      rows.append([name, "error: " + r["error"][:60]] + [""] * (len(head) - 2))
      continue
    row = [name, f"{1e3 * r['median_s']['stock']:.1f}",
           f"{1e3 * r['median_s']['dwop']:.1f}", f"{r['speedup']:.2f}x",
           f">= {GOALS[name]}x"]
    if with_torch:
      t = r.get("torch")
      row.append(f"{1e3 * t['median_s']:.1f}" if t and "median_s" in t else
                 "n/a")
    rows.append(row)
  widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
  lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
  lines.insert(1, "  ".join("-" * w for w in widths))
  return "\n".join(lines)


def plot(results, path, title):
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  names = [n for n, r in results.items() if "error" not in r]
  if not names:
    return False
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
  pos = range(len(names))
  stock = [1e3 * results[n]["median_s"]["stock"] for n in names]
  ours = [1e3 * results[n]["median_s"]["dwop"] for n in names]
  ax1.bar([p - 0.2 for p in pos], stock, 0.4, label="stock TensorFlow")
  ax1.bar([p + 0.2 for p in pos], ours, 0.4, label="dwop.enable()")
  ax1.set_xticks(list(pos), names, rotation=15)
  ax1.set_ylabel("training step, median ms")
  ax1.set_yscale("log")
  ax1.legend()
  speedups = [results[n]["speedup"] for n in names]
  ax2.bar(list(pos), speedups, 0.5, color="tab:green", label="measured")
  ax2.scatter(list(pos), [GOALS[n] for n in names], color="k", marker="_",
              s=400, label="goal", zorder=3)
  ax2.axhline(1.0, color="gray", lw=0.8)
  ax2.set_xticks(list(pos), names, rotation=15)
  ax2.set_ylabel("speed-up of dwop.enable() over stock")
  ax2.legend()
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return True


def main(argv=None):
  args = parse_args(argv)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(args.threads)
  tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  with_torch = torch_available(args)
  results = {}
  for name in args.models:
    print(f"[{name}] building, tracing, {args.warmup} warm-up + {args.reps} "
          "timed steps per variant ...", file=sys.stderr, flush=True)
    try:
      results[name] = bench_keras(args, name)
    except Exception as e:  # pylint: disable=broad-except
      results[name] = {"error": f"{type(e).__name__}: {e}"}
      continue
    if with_torch:
      try:
        results[name]["torch"] = bench_torch(args, name)
      except Exception as e:  # pylint: disable=broad-except
        results[name]["torch"] = {"error": f"{type(e).__name__}: {e}"}
  config = {k: getattr(args, k) for k in
            ("batch", "size", "classes", "threads", "warmup", "reps", "quick")}
  config.update(tensorflow=tf.__version__, python=platform.python_version(),
                machine=platform.machine(), cpu=_cpu_name(),
                torch=with_torch)
  title = (f"Keras training step, batch {args.batch} at {args.size}x"
           f"{args.size}, {args.threads} threads (TF {tf.__version__})")
  print(title)
  print(table(results, with_torch))
  for name, r in results.items():
    if "dwop_ops" in r:
      print(f"  {name}: stock ops {r['stock_ops']}\n"
            f"  {' ' * len(name)}  dwop ops  {r['dwop_ops']}")
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "results.json"), "w") as f:
    json.dump({"config": config, "results": results}, f, indent=1)
  if plot(results, os.path.join(args.out, "e2e.png"), title):
    print(f"wrote {args.out}/results.json and {args.out}/e2e.png")
  else:
    print(f"wrote {args.out}/results.json (no plot: matplotlib missing)")
  return 1 if any("error" in r for r in results.values()) else 0


def _cpu_name():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor()


if __name__ == "__main__":
  sys.exit(main())
