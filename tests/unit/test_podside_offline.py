"""`kubedock offline`: the ioctl requests byte for byte, and the effect in a network namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from kubedock.podside._offline import flags_of, flags_request, no_address_request


def test_requests_are_linux_ifreqs() -> None:
    assert flags_request("eth0", 0x1043) == b"eth0" + b"\0" * 12 + b"\x43\x10" + b"\0" * 22
    assert no_address_request("eth0") == (b"eth0" + b"\0" * 12 + b"\x02\x00" + b"\0" * 22)
    assert len(flags_request("x")) == len(no_address_request("x")) == 40
    assert flags_of(flags_request("eth0", 0x1043)) == 0x1043


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"),
                    reason="needs root, unshare and ip to make a network namespace")
def test_every_interface_but_loopback_loses_its_address_and_goes_down() -> None:
    script = (
        "ip link add v0 type veth peer name v1 && ip addr add 10.9.9.9/24 dev v0 && "
        "ip link set v0 up && ip link set lo up && "
        f"{sys.executable} -c 'from kubedock.podside._offline import run_offline; "
        "raise SystemExit(run_offline())' && ip -o addr && ip -o route && ip -o link"
    )
    shown = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True,
                           text=True, check=True).stdout
    addresses = [line for line in shown.splitlines() if " inet " in line]
    assert [line.split()[1] for line in addresses] == ["lo"]
    assert "10.9.9" not in shown
    links = {line.split(":")[1].strip().split("@")[0]: line for line in shown.splitlines()
             if "link/" in line}
    assert "state DOWN" in links["v0"] and "state DOWN" in links["v1"]
