"""Writes the build flags of the importing interpreter's TensorFlow.

Usage: python tf_config.py [--refresh] PREFIX

Creates PREFIX.cflags, PREFIX.lflags and PREFIX.version (the Makefile and
setup.py build against them), then the stamp PREFIX, which the objects
compiled against TensorFlow depend on. TensorFlow's include directory becomes
-isystem so that its headers' warnings stay out of ours.

With --refresh (setup.py's builds), the three files are always rewritten but
the stamp is only touched when the version or a flag other than a path
changed: an isolated pip build installs the same TensorFlow at a new path
each time, and its headers and library are the same, so the objects stay
valid and only the paths the next compile or link reads are updated.
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # pylint: disable=g-import-not-at-top

# Flags whose value is a path (they change with the environment, not the ABI).
_PATH_FLAGS = ("-isystem", "-I", "-L")


def signature(outputs):
  """What the objects depend on: the version and the flags but paths."""
  flags = [f for key in ("cflags", "lflags") for f in outputs[key].split()
           if not f.startswith(_PATH_FLAGS)]
  return "\n".join([outputs["version"]] + flags) + "\n"


def main(argv):
  refresh = "--refresh" in argv
  (prefix,) = [a for a in argv if a != "--refresh"]
  cflags = [f"-isystem{f[2:]}" if f.startswith("-I") else f
            for f in tf.sysconfig.get_compile_flags()]
  outputs = {
      "cflags": " ".join(cflags),
      "lflags": " ".join(tf.sysconfig.get_link_flags()),
      "version": tf.__version__,
  }
  os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
  for suffix, text in outputs.items():
    pathlib.Path(f"{prefix}.{suffix}").write_text(text + "\n")
  stamp = pathlib.Path(prefix)
  new = signature(outputs)
  if refresh and stamp.is_file() and stamp.read_text() == new:
    return
  stamp.write_text(new)


if __name__ == "__main__":
  main(sys.argv[1:])
