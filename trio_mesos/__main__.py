"""``python -m trio_mesos``: the ``trio-mesos`` command (see :mod:`trio_mesos._cli`)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
