"""`python -m bot`: the same as the `wirobot` command."""

import sys

from bot.cli import main

sys.exit(main())
