"""``python -m nas``: the same as the ``nas`` console script."""
import sys

from nas.cli.main import main

sys.exit(main())
