"""pytest set-up: quiet TensorFlow logs and the import paths of tests/testing.py."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import testing  # pylint: disable=unused-import,wrong-import-position
