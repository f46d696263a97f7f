"""trio_mesos: a Trio-native Apache Mesos ExecutorDriver.

Importing this package has no side effects: it installs no logging handlers
and no signal handlers, and it can be imported from any thread.
"""

from ._config import ExecutorConfig as ExecutorConfig
from ._config import TLSConfig as TLSConfig
from ._driver import DEFAULT_STOP_TIMEOUT as DEFAULT_STOP_TIMEOUT
from ._driver import DriverStatistics as DriverStatistics
from ._driver import ExecutorDriver as ExecutorDriver
from ._errors import AgentUnavailableError as AgentUnavailableError
from ._errors import CallRejectedError as CallRejectedError
from ._errors import ConfigError as ConfigError
from ._errors import DriverClosedError as DriverClosedError
from ._errors import JoinFromCallbackError as JoinFromCallbackError
from ._errors import LocalProtocolError as LocalProtocolError
from ._errors import MessageQueueFullError as MessageQueueFullError
from ._errors import ProtocolError as ProtocolError
from ._errors import RemoteProtocolError as RemoteProtocolError
from ._errors import TrioMesosError as TrioMesosError
from ._errors import TrioMesosInternalError as TrioMesosInternalError
from ._executor import Executor as Executor
from ._messages import TERMINAL_STATES as TERMINAL_STATES
from ._messages import ContentType as ContentType
from ._messages import is_terminal as is_terminal
from ._open import open_executor_driver as open_executor_driver
from ._open import run_executor as run_executor
from ._status import Status as Status
from ._version import __version__ as __version__

__all__ = [
    "DEFAULT_STOP_TIMEOUT",
    "TERMINAL_STATES",
    "AgentUnavailableError",
    "CallRejectedError",
    "ConfigError",
    "ContentType",
    "DriverClosedError",
    "DriverStatistics",
    "Executor",
    "ExecutorConfig",
    "ExecutorDriver",
    "JoinFromCallbackError",
    "LocalProtocolError",
    "MessageQueueFullError",
    "ProtocolError",
    "RemoteProtocolError",
    "Status",
    "TLSConfig",
    "TrioMesosError",
    "TrioMesosInternalError",
    "__version__",
    "is_terminal",
    "open_executor_driver",
    "run_executor",
]

# Public names say they live here, not in a private module (trio's convention).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("trio_mesos._"):
        _obj.__module__ = "trio_mesos"
del _name, _obj
