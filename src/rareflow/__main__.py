"""``python -m rareflow`` = the ``rareflow`` command."""

import sys

from rareflow.cli import main

sys.exit(main())
