"""``python -m aai_proto.trio``: the ``aai-proto`` command."""

import sys

from ._cli import main

sys.exit(main())
