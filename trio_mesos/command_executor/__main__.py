"""``python -m trio_mesos.command_executor``: the ``trio-mesos-executor`` program."""

import sys

from trio_mesos.command_executor import main

sys.exit(main())
