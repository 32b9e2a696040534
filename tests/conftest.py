"""pytest set-up: quiet TensorFlow logs. (The shared modules in python/ are on
pytest's pythonpath, pyproject.toml.)"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
