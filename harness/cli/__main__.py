"""``python -m harness.cli``: the redodiff command line."""

from harness.cli import main

if __name__ == "__main__":  # not again in a worker process, which imports this module as __mp_main__
    main()
