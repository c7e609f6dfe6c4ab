"""``python -m embedops``: the same as the ``embedops`` command."""

from embedops.cli import main

main()
