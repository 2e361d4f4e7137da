"""The ``stella`` command line."""
