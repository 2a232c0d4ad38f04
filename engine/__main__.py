"""``python -m engine``: the ``gramophone`` command, for when the script is not on the PATH."""

import sys

from .cli import main

sys.exit(main())
