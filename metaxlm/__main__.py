"""``python -m metaxlm ...`` = the ``metaxlm`` command (useful where the package is on PYTHONPATH only)."""

from metaxlm.cli import main

main()
