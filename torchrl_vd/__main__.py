"""``python -m torchrl_vd`` = the ``torchrl-vd`` console script."""

import sys

from torchrl_vd.cli import main

sys.exit(main())
