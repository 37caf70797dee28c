"""``python -m harness.cli``: the redodiff command line."""

from harness.cli import main

main()
