"""Multi-worker data-parallel training with dwop: MultiWorkerMirroredStrategy
and a custom training loop (Keras 3's `fit` does not run under this strategy,
keras-team/keras#20585).

Each worker runs this script with its own TF_CONFIG. Two workers on one
machine, by hand:

  export CLUSTER='"cluster": {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]}'
  TF_CONFIG="{$CLUSTER, \"task\": {\"type\": \"worker\", \"index\": 0}}" \\
      python python/multiworker_example.py --out w0.npz &
  TF_CONFIG="{$CLUSTER, \"task\": {\"type\": \"worker\", \"index\": 1}}" \\
      python python/multiworker_example.py --out w1.npz

or let the script start them on free loopback ports and compare their
weights:

  python python/multiworker_example.py --local 2

On several machines, list every worker's host:port in each TF_CONFIG and run
one process per machine. dwop needs nothing special: every worker imports
dwop (here through dwop.layers), whose layers compute the filter gradient on
each replica; the strategy all-reduces the gradients as for any layer.
"""

import argparse
import json
import os
import socket
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Examples and samples per worker step: small enough to run on a laptop CPU.
PER_REPLICA_BATCH = 8
IMAGE = (16, 16, 8)
CLASSES = 4


def build_model(keras, layers):
  """A small depthwise-separable classifier built from dwop's layers."""
  return keras.Sequential([
      keras.Input(IMAGE),
      layers.DepthwiseConv2D(3, padding="same"),
      keras.layers.ReLU(),
      layers.SeparableConv2D(8, 5, padding="same", dilation_rate=2),
      keras.layers.ReLU(),
      keras.layers.GlobalAveragePooling2D(),
      keras.layers.Dense(CLASSES),
  ])


def train(steps, out):
  """One worker's part (TF_CONFIG names the cluster and this task)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  import dwop.layers  # pylint: disable=g-import-not-at-top

  # Created before anything else touches TensorFlow's runtime.
  strategy = tf.distribute.MultiWorkerMirroredStrategy()
  global_batch = PER_REPLICA_BATCH * strategy.num_replicas_in_sync

  rng = np.random.default_rng(0)
  images = rng.standard_normal((512,) + IMAGE).astype("float32")
  # A learnable task: the class is the brightest of the first channels.
  labels = images[..., :CLASSES].mean(axis=(1, 2)).argmax(axis=-1)

  def dataset(context):
    # Every worker reads its own shard of the same data.
    data = tf.data.Dataset.from_tensor_slices((images, labels))
    data = data.shard(context.num_input_pipelines, context.input_pipeline_id)
    return data.repeat().batch(
        context.get_per_replica_batch_size(global_batch), drop_remainder=True)

  batches = iter(strategy.distribute_datasets_from_function(dataset))

  with strategy.scope():
    keras.utils.set_random_seed(0)
    model = build_model(keras, dwop.layers)
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
  initial = [v.numpy() for v in model.trainable_variables]
  loss_fn = keras.losses.SparseCategoricalCrossentropy(
      from_logits=True, reduction="none")

  @tf.function
  def train_step(iterator):
    def replica_step(x, y):
      with tf.GradientTape() as tape:
        loss = tf.nn.compute_average_loss(
            loss_fn(y, model(x, training=True)),
            global_batch_size=global_batch)
      grads = tape.gradient(loss, model.trainable_variables)
      # Keras' optimizer all-reduces (sums) the gradients across replicas.
      optimizer.apply_gradients(zip(grads, model.trainable_variables))
      return loss
    losses = strategy.run(replica_step, args=next(iterator))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

  losses = [float(train_step(batches)) for _ in range(steps)]
  task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
  print(f"worker {task.get('index', 0)}: loss {losses[0]:.4f} -> "
        f"{losses[-1]:.4f} over {steps} steps", flush=True)
  if out:
    np.savez(out, losses=np.array(losses),
             **{f"w{i}": v.numpy()
                for i, v in enumerate(model.trainable_variables)},
             **{f"initial{i}": v for i, v in enumerate(initial)})


def free_ports(count):
  """Loopback ports free right now (each bound, read, then released)."""
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def worker_environments(count):
  """TF_CONFIG for `count` workers on 127.0.0.1, one per worker."""
  cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(count)]}
  return [json.dumps({"cluster": cluster,
                      "task": {"type": "worker", "index": i}})
          for i in range(count)]


def launch_local(count, steps, directory, timeout=600):
  """Starts `count` workers on loopback ports; returns their weight files."""
  outs = [os.path.join(directory, f"worker{i}.npz") for i in range(count)]
  procs = []
  for config, out in zip(worker_environments(count), outs):
    env = dict(os.environ, TF_CONFIG=config)
    procs.append(subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--steps", str(steps),
         "--out", out], env=env))
  try:
    codes = [p.wait(timeout=timeout) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  if any(codes):
    raise RuntimeError(f"workers exited with {codes}")
  return outs


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--out", help="write this worker's weights (.npz)")
  parser.add_argument("--local", type=int, metavar="N",
                      help="start N workers on 127.0.0.1 and compare them")
  args = parser.parse_args()
  if not args.local:
    train(args.steps, args.out)
    return 0
  import tempfile  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as directory:
    outs = launch_local(args.local, args.steps, directory)
    results = [dict(np.load(out)) for out in outs]
  agree = all(np.array_equal(r[k], results[0][k])
              for r in results[1:] for k in results[0] if k.startswith("w"))
  print("workers' weights are identical" if agree else
        "workers' weights DIFFER")
  return 0 if agree else 1


if __name__ == "__main__":
  sys.exit(main())
