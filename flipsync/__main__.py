"""`python -m flipsync` is the `flipsync` command."""

import sys

from flipsync.cli import main

sys.exit(main())
