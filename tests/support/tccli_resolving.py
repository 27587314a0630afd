"""tccli, with host names under .cloudrec.test resolving to 127.0.0.1 in this process only
(the e2e tests call the local stack by name without editing /etc/hosts).

Run as `python tests/support/tccli_resolving.py <tccli arguments>`.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

_getaddrinfo = socket.getaddrinfo


def _resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
    if isinstance(host, str) and host.endswith(".cloudrec.test"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


if __name__ == "__main__":
    socket.getaddrinfo = _resolve
    from tccli.main import main

    sys.exit(main())
