"""Which address a request comes from, for the per-IP rate limit: trusted proxies are explicit.

`TrustedProxies` reads `TITANS_TRUSTED_PROXIES` (IP addresses or CIDR networks; default none). From
an untrusted peer the peer's address counts, whatever `X-Forwarded-For` says; from a trusted one the
header is read from the right to the first untrusted address. uvicorn trusts no peer
(bento/service.py), so this module is the one place that decides.

Design notes (the rules, uvicorn's default): docs/design-notes.md#titans_assetslibservingproxiespy
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ENV = "TITANS_TRUSTED_PROXIES"
MAX_FORWARDED = 32  # addresses read from X-Forwarded-For at most (a longer chain is not a real proxy chain)

# uvicorn's FORWARDED_ALLOW_IPS in the workers: an empty value is a list of one empty name, which no
# peer address matches, so uvicorn leaves scope["client"] as the TCP peer.
UVICORN_FORWARDED_ALLOW_IPS = ""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyConfigError(ValueError):
    code = "E003"


def _host(value: str) -> str:
    """An X-Forwarded-For entry without its port: `1.2.3.4:80` -> `1.2.3.4`, `[::1]:80` -> `::1`."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


@dataclass(frozen=True)
class TrustedProxies:
    networks: tuple[Network, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TrustedProxies:
        return cls.parse(environ.get(ENV) or "")

    @classmethod
    def parse(cls, raw: str) -> TrustedProxies:
        networks = []
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ProxyConfigError(
                    f"E003 invalid input: {ENV}: {item[:60]!r} is not an IP address or "
                    "CIDR network (e.g. 10.0.0.5 or 10.0.0.0/8)"
                ) from None
        return cls(tuple(dict.fromkeys(networks)))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        if not host or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def client(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The address a request is counted under: `peer` (the TCP peer), or, when `peer` is a trusted
        proxy, the client its `X-Forwarded-For` values name."""
        peer = peer or "unknown"
        if not self.trusts(peer):
            return peer
        hosts = [_host(h) for value in forwarded_for for h in value.split(",")]
        hosts = [h for h in hosts if h][-MAX_FORWARDED:]
        if not hosts:
            return peer
        for host in reversed(hosts):
            if not self.trusts(host):
                return host[:64]
        return hosts[0][:64]

    def describe(self) -> list[str]:
        return [str(n) for n in self.networks]
