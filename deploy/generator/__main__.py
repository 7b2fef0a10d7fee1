"""``python -m deploy.generator`` (from the repository root): the same as ``deploy/generate.py``."""

from . import main

main()
