"""Writes the build flags of the importing interpreter's TensorFlow.

Usage: python tf_config.py PREFIX

Creates PREFIX.cflags, PREFIX.lflags and PREFIX.version (the Makefile and
setup.py build against them), then touches PREFIX. TensorFlow's include
directory becomes -isystem so that its headers' warnings stay out of ours.
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import tensorflow as tf  # pylint: disable=g-import-not-at-top


def main(prefix):
  cflags = [f"-isystem{f[2:]}" if f.startswith("-I") else f
            for f in tf.sysconfig.get_compile_flags()]
  outputs = {
      "cflags": " ".join(cflags),
      "lflags": " ".join(tf.sysconfig.get_link_flags()),
      "version": tf.__version__,
  }
  for suffix, text in outputs.items():
    pathlib.Path(f"{prefix}.{suffix}").write_text(text + "\n")
  pathlib.Path(prefix).touch()


if __name__ == "__main__":
  main(sys.argv[1])
