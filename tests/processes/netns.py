"""Hosts for process tests: Linux network namespaces with addresses of their own.

Each host is a network namespace joined to the machine's own by a veth pair on a /30 of
10.0.0.0/8 chosen at random per run (tests on other databases may run at the same time),
with a host name of its own (a UTS namespace per process). The database listens on
127.0.0.1 only, so a forwarder in the machine's namespace listens on the root side of
every veth and forwards to it. ``Host.cut()`` takes the root side of its link down: the
host's packets go nowhere, its open connections hang, and the database side of them stays
open, as in a real partition.

Needs root and ip(8); everything created is removed when the ``Network`` closes, even
when the test failed. ``bench/many_hosts.py`` uses it too.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@functools.cache
def namespaces_available() -> str:
    """Why network namespaces cannot be used here, or "" when they can."""
    if sys.platform != "linux":
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "creating network namespaces needs root (CI runs this test as root)"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "needs ip(8) and unshare(1)"
    probe = f"djprobe{os.getpid()}"
    if ip("netns", "add", probe, check=False).returncode != 0:
        return "this kernel or container does not allow new network namespaces"
    ip("netns", "del", probe, check=False)
    return ""


@dataclass
class Host:
    name: str
    netns: str
    veth: str
    #: The database as this host reaches it: the forwarder on the root side of its link.
    gateway: str
    address: str

    @property
    def prefix(self) -> list[str]:
        """Run a command on this host: in its network namespace, under its host name."""
        return [
            "ip", "netns", "exec", self.netns, "unshare", "--uts",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.name,
        ]  # fmt: skip

    def cut(self) -> None:
        ip("link", "set", self.veth, "down")

    def restore(self) -> None:
        ip("link", "set", self.veth, "up")


class Network:
    """``count`` hosts and the forwarder to ``target`` (host, port); a context manager."""

    def __init__(self, count: int, target: tuple[str, int]) -> None:
        self.tag = secrets.token_hex(3)
        self.target = target
        self.hosts: list[Host] = []
        self.forwarder: subprocess.Popen | None = None
        self.port = 0
        # A /24 of 10.0.0.0/8 per run; two runs sharing one is a 1 in 32,000 chance.
        self.net = f"10.{secrets.randbelow(128) + 128}.{secrets.randbelow(256)}"
        self.count = count

    def __enter__(self) -> Network:
        try:
            for n in range(self.count):
                self.hosts.append(self._add(n))
            self._start_forwarder()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add(self, n: int) -> Host:
        # Interface names: at most 15 characters.
        host = Host(
            name=f"host{n}-{self.tag}", netns=f"dj-{self.tag}-{n}", veth=f"dj{self.tag}r{n}",
            gateway=f"{self.net}.{4 * n + 1}", address=f"{self.net}.{4 * n + 2}",
        )  # fmt: skip
        self.hosts.append(host)  # from here on, close() removes it
        inside = f"dj{self.tag}n{n}"
        ip("netns", "add", host.netns)
        ip("link", "add", host.veth, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", host.netns)
        ip("addr", "add", f"{host.gateway}/30", "dev", host.veth)
        ip("link", "set", host.veth, "up")
        ns = ["-n", host.netns]
        ip(*ns, "addr", "add", f"{host.address}/30", "dev", inside)
        ip(*ns, "link", "set", inside, "up")
        ip(*ns, "link", "set", "lo", "up")
        self.hosts.pop()
        return host

    def _start_forwarder(self) -> None:
        command = [
            sys.executable, "-m", "tests.processes.forwarder",
            self.target[0], str(self.target[1]), *(host.gateway for host in self.hosts),
        ]  # fmt: skip
        self.forwarder = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
        )
        line = self.forwarder.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the forwarder did not start: {line!r}")
        self.port = int(line)

    def close(self) -> None:
        if self.forwarder is not None:
            if self.forwarder.poll() is None:
                self.forwarder.kill()
            self.forwarder.wait(10)
            self.forwarder.stdout.close()
            self.forwarder = None
        for host in self.hosts:
            # Deleting the namespace deletes the veth inside and with it its root side.
            ip("netns", "del", host.netns, check=False)
            ip("link", "del", host.veth, check=False)
        self.hosts = []
