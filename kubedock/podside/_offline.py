"""`kubedock offline`: the init container that takes a pod off the network (``--network none``).

A pod always gets an interface on the cluster network; Docker's ``none`` mode leaves a
container with the loopback interface alone. The containers of a pod share one network
namespace, so an init container with CAP_NET_ADMIN that removes the address of every other
interface and sets it down leaves `main` with what Docker's ``none`` gives: ``lo`` only, no
route anywhere.
"""

from __future__ import annotations

import fcntl
import socket
import struct
import sys

# From <linux/sockios.h> and <net/if.h>.
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_SIOCSIFADDR = 0x8916
_IFF_UP = 0x1
_IFNAMSIZ = 16
_IFREQ_SIZE = 40  # struct ifreq on Linux, whatever the union member


def flags_request(name: str, flags: int = 0) -> bytes:
    """A ``struct ifreq`` naming the interface, with ``ifr_flags``."""
    return struct.pack(f"{_IFNAMSIZ}sh", name.encode(), flags).ljust(_IFREQ_SIZE, b"\0")


def no_address_request(name: str) -> bytes:
    """A ``struct ifreq`` whose ``ifr_addr`` is AF_INET 0.0.0.0: SIOCSIFADDR with it removes
    the interface's IPv4 addresses."""
    address = struct.pack("=H2s4s8x", socket.AF_INET, b"\0\0", b"\0\0\0\0")
    return struct.pack(f"{_IFNAMSIZ}s", name.encode()).ljust(_IFNAMSIZ, b"\0") + address.ljust(
        _IFREQ_SIZE - _IFNAMSIZ, b"\0")


def flags_of(reply: bytes) -> int:
    flags: int = struct.unpack_from("h", reply, _IFNAMSIZ)[0]
    return flags


def take_offline(name: str) -> None:
    """Remove `name`'s IPv4 address and set it down (its routes go with it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as control:
        try:
            fcntl.ioctl(control, _SIOCSIFADDR, no_address_request(name))
        except OSError as error:
            if error.errno != 99:  # EADDRNOTAVAIL: it had no IPv4 address
                raise
        flags = flags_of(fcntl.ioctl(control, _SIOCGIFFLAGS, flags_request(name)))
        fcntl.ioctl(control, _SIOCSIFFLAGS, flags_request(name, flags & ~_IFF_UP))


def run_offline() -> int:
    names = [name for _, name in socket.if_nameindex() if name != "lo"]
    try:
        for name in names:
            take_offline(name)
    except OSError as error:
        print(f"kubedock offline: cannot take the pod off the network: {error} (the init "
              "container needs the NET_ADMIN capability)", file=sys.stderr)
        return 1
    print(f"kubedock offline: {', '.join(names) or 'no interface'} taken down", file=sys.stderr)
    return 0
