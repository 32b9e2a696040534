"""`python -m fuzz`: see fuzz/__init__.py."""

import sys

from fuzz.cli import main

sys.exit(main())
