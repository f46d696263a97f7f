"""trio_mesos: a Trio-native Apache Mesos ExecutorDriver.

Importing this package has no side effects: it installs no logging handlers
and no signal handlers, and it can be imported from any thread.
"""

from ._config import ExecutorConfig as ExecutorConfig
from ._errors import AgentUnavailableError as AgentUnavailableError
from ._errors import ConfigError as ConfigError
from ._errors import DriverClosedError as DriverClosedError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import ProtocolError as ProtocolError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import TrioMesosError as TrioMesosError
from ._errors import TrioMesosInternalError as TrioMesosInternalError
from ._status import Status as Status
from ._version import __version__ as __version__

__all__ = [
    "AgentUnavailableError",
    "ConfigError",
    "DriverClosedError",
    "ExecutorConfig",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "Status",
    "TrioMesosError",
    "TrioMesosInternalError",
    "__version__",
]

# Public names say they live here, not in a private module (trio's convention).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trio_mesos._"):
        _obj.__module__ = "trio_mesos"
del _name, _obj
