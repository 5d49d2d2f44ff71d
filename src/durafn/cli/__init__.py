"""The ``durafn`` command line."""
