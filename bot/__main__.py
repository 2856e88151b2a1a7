"""`python -m bot`: the same as the `wirobot` command."""

import sys

from bot.cli import entry

sys.exit(entry())
