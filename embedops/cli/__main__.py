"""``python -m embedops.cli``: the same as the ``embedops`` command."""

from embedops.cli import main

main()
