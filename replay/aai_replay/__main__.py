"""``python -m aai_replay``: the ``aai-replay`` command."""

from ._cli import main

main()
