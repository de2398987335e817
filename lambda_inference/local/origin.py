"""Which browser requests ``mlsys serve`` refuses: other origins and other host names.

The local server has no authentication (it is meant for 127.0.0.1), so any web
page the developer visits could otherwise drive it: ``<img src=".../emptyLog">``
clears the log, a ``no-cors`` ``fetch`` posts predictions or feedback, and a
page whose own name resolves to 127.0.0.1 (DNS rebinding) becomes same-origin.
The checks, on every request before it reaches a handler (403 ``forbidden``):

* ``Host`` must be an IP address, ``localhost`` (or a name under
  ``.localhost``), the name the server was started with, or one added with
  ``--allowed-host``: a rebinding page's requests carry its own name;
* ``Origin``, when sent, must be the server's own (``http://`` + the ``Host``
  header): browsers send it with every cross-origin ``fetch`` and form post;
* ``Sec-Fetch-Site``, when sent, must be ``same-origin`` or ``none`` (typed
  in the address bar, a bookmark): an ``<img>``, ``<script>`` or link from
  another page sends ``cross-site`` or ``same-site`` and no ``Origin``.

Clients that are not browsers (curl, SDKs, the test suite) send none of
``Origin``/``Sec-Fetch-Site`` and an IP or ``localhost`` host, so they pass.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SAFE_FETCH_SITES = frozenset({"same-origin", "none"})
LOCAL_NAMES = frozenset({"localhost"})


def host_name(host: str) -> str:
    """The name or address in a ``Host`` header, without port, brackets or final dot."""
    value = host.strip().lower()
    if value.startswith("["):  # [::1]:8080
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


@functools.lru_cache(maxsize=256)
def _is_ip(name: str) -> bool:
    """Whether ``name`` is an IP address (cached: a server sees a handful of Host
    values, and parsing one costs ~2 us)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class BrowserPolicy:
    """The host names a request may address; see the module docstring."""

    allowed_names: frozenset[str] = LOCAL_NAMES

    @classmethod
    def for_server(cls, bound_host: str, extra: Iterable[str] = ()) -> BrowserPolicy:
        """Loopback names, the ``--host`` the server was started with, and ``extra``."""
        names = set(LOCAL_NAMES) | {host_name(name) for name in extra}
        if not _is_ip(host_name(bound_host)):
            names.add(host_name(bound_host))
        return cls(frozenset(names))

    def refusal(self, headers: Mapping[str, str]) -> str | None:
        """Why a request with these (lower-cased) headers is refused; None if it is not."""
        host = headers.get("host")
        if host is not None:
            name = host_name(host)
            allowed = _is_ip(name) or name in self.allowed_names or name.endswith(".localhost")
            if not allowed:
                return (
                    f"host {host[:100]!r} is not a name this server answers to (DNS "
                    "rebinding protection); start it with --allowed-host NAME to add one"
                )
        origin = headers.get("origin")
        if origin is not None and (host is None or origin.lower() != f"http://{host.lower()}"):
            return f"cross-origin request from {origin[:100]!r} refused"
        site = headers.get("sec-fetch-site")
        if site is not None and site.lower() not in SAFE_FETCH_SITES:
            return f"request from another site refused (Sec-Fetch-Site: {site[:40]})"
        return None
