"""``python -m chronoid``: the same command as ``chronoid``."""

import sys

from chronoid.cli import main

sys.exit(main())
