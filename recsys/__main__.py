"""``python -m recsys`` (and ``torchrun ... -m recsys build-index``): the ``recsys`` command."""

from recsys.cli.launch import main

main()
