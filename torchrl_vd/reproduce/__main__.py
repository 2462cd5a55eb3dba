"""``python -m torchrl_vd.reproduce SUITE ...``: the ``torchrl-vd reproduce`` command line (cli.py)."""

import sys

from torchrl_vd.reproduce.cli import main

sys.exit(main())
