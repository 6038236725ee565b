"""Whether a URL's host is this machine, as the kernel would route a connection to it.

A base URL names this machine in many spellings: any 127.x.y.z, ``localhost.``, the
IPv4-mapped ``[::ffff:127.0.0.1]``, ``0.0.0.0``, a name of the host, and each address of its
own network interfaces (the LAN address `flipsync http --host 192.168.x.y` prints in its
``export`` lines). A name is resolved by the local resolver within RESOLVE_TIMEOUT_S; a name
that does not resolve in time is taken as another machine's.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from urllib.parse import urlsplit

RESOLVE_TIMEOUT_S = 1.0
"""How long a host name may take to resolve before it is taken as another machine's."""

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def url_is_this_machine(url: str | None, timeout_s: float = RESOLVE_TIMEOUT_S) -> bool:
    """Whether a connection to url's host would reach this machine (False for no host)."""
    try:
        host = urlsplit(url or "").hostname
    except ValueError:  # a malformed URL (bad brackets): nothing this machine serves
        return False
    if not host:
        return False
    own = interface_addresses()
    return any(_is_local(address, own) for address in resolve(host, timeout_s))


def resolve(host: str, timeout_s: float = RESOLVE_TIMEOUT_S) -> list[Address]:
    """The addresses host names: itself when an IP literal, else what the local resolver
    answers within timeout_s (none when it fails or takes longer)."""
    host = host.rstrip(".")  # "localhost." is localhost (a fully qualified name)
    if (literal := _address(host)) is not None:
        return [literal]
    found: list[Address] = []

    def lookup() -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            return
        found.extend(a for info in infos if (a := _address(str(info[4][0]))) is not None)

    # A daemon thread: a resolver that hangs past the bound must not hold the process's exit.
    thread = threading.Thread(target=lookup, name="resolve-host", daemon=True)
    thread.start()
    thread.join(timeout_s)
    return [] if thread.is_alive() else found


def interface_addresses() -> frozenset[Address]:
    """Every IP address of this machine's network interfaces."""
    import psutil  # only when a URL is checked: `flipsync --help` stays light

    addresses = (
        _address(a.address)
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6)
    )
    return frozenset(a for a in addresses if a is not None)


def _is_local(address: Address, own: frozenset[Address]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_unspecified or address in own


def _address(text: str) -> Address | None:
    """text as an IP address without its zone ("fe80::1%eth0"), or None."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
