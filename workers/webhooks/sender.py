"""Sending one delivery: the signature, and the guard against server-side request forgery.

- Signature: `PromptForge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
  A receiver recomputes it over the raw body and refuses timestamps outside its tolerance (README).
- SSRF: the host is resolved at delivery time and the request goes to the resolved address itself
  (with the original Host header and TLS server name), so a DNS answer cannot change between the
  check and the connection; loopback, private, link-local, shared and other non-global addresses
  are refused unless `allow_private`. Redirects are never followed; at most 4 KiB of the response is
  read."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

TIMEOUT_SECONDS = 10.0
MAX_RESPONSE_BYTES = 4096
USER_AGENT = "PromptForge-Webhooks/1"


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, body: bytes, header: str, tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """What a receiver does (documented in the README; used by the tests as the receiver)."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        t, given = int(parts["t"]), parts["v1"].encode("ascii")
    except (ValueError, KeyError, AttributeError):  # malformed, or not ASCII (compare_digest refuses it)
        return False
    if abs((time.time() if now is None else now) - t) > tolerance_seconds:
        return False
    return hmac.compare_digest(signature(secret, body, t).split("v1=", 1)[1].encode(), given)


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class Refused(Exception):
    """The destination is not allowed (a private address, an unresolvable host)."""


def _allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(url: str, allow_private: bool) -> tuple[str, str, str | None]:
    """(URL to connect to, Host header, TLS server name) for the first acceptable address."""
    targets, host_header, server_name = resolve_all(url, allow_private)
    return targets[0], host_header, server_name


def resolve_all(url: str, allow_private: bool) -> tuple[list[str], str, str | None]:
    """Like `resolve`, with a URL per address, in the resolver's order (all of them checked)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # stored before the URL rules refused it
        raise Refused(f"invalid url: {exc}") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise Refused(f"cannot resolve {host[:100]}: {exc.strerror}") from None
    except (UnicodeError, ValueError) as exc:  # e.g. a label longer than 63 characters
        raise Refused(f"cannot resolve {host[:100]}: {exc}") from None
    addresses = [info[4][0] for info in infos]
    if not allow_private:
        blocked = [a for a in addresses if not _allowed(a)]
        if blocked:
            raise Refused(f"{host[:100]} resolves to a non-public address ({blocked[0]}); set "
                          "PROMPTFORGE_WEBHOOKS_ALLOW_PRIVATE_NETWORKS=true to allow it")
    targets = []
    for address in dict.fromkeys(addresses):
        netloc = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        targets.append(urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return targets, host_header, host if parts.scheme == "https" else None


def deliver(url: str, body: bytes, headers: dict[str, str], *, allow_private: bool,
            timeout: float = TIMEOUT_SECONDS) -> Outcome:
    started = time.perf_counter()

    def outcome(ok: bool, code: int | None, error: str | None) -> Outcome:
        return Outcome(ok, code, int((time.perf_counter() - started) * 1000), error)

    try:
        targets, host, server_name = resolve_all(url, allow_private)
    except Refused as exc:
        return outcome(False, None, str(exc))
    extensions = {"sni_hostname": server_name} if server_name else {}
    for target in targets:
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                with client.stream("POST", target, content=body, extensions=extensions,
                                   headers={**headers, "Host": host, "User-Agent": USER_AGENT,
                                            "Content-Type": "application/json"}) as response:
                    read = 0
                    for chunk in response.iter_bytes():
                        read += len(chunk)
                        if read >= MAX_RESPONSE_BYTES:
                            break
                        if time.perf_counter() - started > timeout:  # a trickling answer: the timeout bounds it all
                            raise httpx.ReadTimeout("the response took longer than the timeout")
                    code = response.status_code
            break
        except httpx.ConnectError as exc:  # nothing listens on this address: the next one (e.g. ::1, then 127.0.0.1)
            if target == targets[-1] or time.perf_counter() - started > timeout:
                return outcome(False, None, f"{type(exc).__name__}: {str(exc)[:200]}")
        except httpx.TimeoutException:
            return outcome(False, None, f"timed out after {timeout:g}s")
        except httpx.InvalidURL as exc:  # not an HTTPError; a URL stored before the rules refused it
            return outcome(False, None, f"invalid url: {exc}")
        except httpx.HTTPError as exc:
            return outcome(False, None, f"{type(exc).__name__}: {str(exc)[:200]}")
    if 200 <= code < 300:
        return outcome(True, code, None)
    return outcome(False, code, "redirects are not followed" if 300 <= code < 400 else f"HTTP {code}")
