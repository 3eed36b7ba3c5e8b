"""The ``uda`` command line (installed as ``uda.cli``)."""
