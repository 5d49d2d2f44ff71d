"""``python -m durafn``: the same as the ``durafn`` command."""

from durafn.cli.main import main

main()
