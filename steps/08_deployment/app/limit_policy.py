"""Rate limits on requests: the general per-client limit and the login limit."""

import hashlib
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from fastapi import HTTPException, Request, Response

from app.config import RateLimit, Settings
from app.ratelimit import RateLimitDecision, RedisRateLimiter, rate_limit_headers
from app.state import request_state

Networks = list[IPv4Network | IPv6Network]


# --8<-- [start:client_address]
# IPv6 clients are counted by their /64: one host usually gets a whole /64 and
# can pick any of its 2**64 addresses, so a limit per address would limit nobody.
# The cost: the hosts of one /64 (rare outside a shared network) share a count.
IPV6_CLIENT_PREFIX = 64


def _parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    """An address from a peer or a forwarded hop: port dropped, IPv4-mapped IPv6 unwrapped."""
    text = text.strip()
    if text.startswith("["):  # [2001:db8::1]:4711, as proxies write an IPv6 hop with a port
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # 203.0.113.7:4711 (an IPv6 address has two colons or more)
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    # A dual-stack socket shows IPv4 peers as ::ffff:a.b.c.d: the same client, the same proxy.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPv4Address | IPv6Address | None, proxies: Networks) -> bool:
    return address is not None and any(address in network for network in proxies)


def client_address(request: Request, trusted_proxies: Networks) -> str:
    """The client's address: the peer's, or X-Forwarded-For's when the peer is a trusted proxy."""
    raw_peer = request.client.host if request.client else ""
    parsed_peer = _parse_ip(raw_peer)
    peer = str(parsed_peer) if parsed_peer is not None else raw_peer
    if not trusted_proxies or not _is_trusted(parsed_peer, trusted_proxies):
        # Anyone can send X-Forwarded-For: only a proxy we run may tell us who the client is.
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
    ]
    address = peer
    # Right to left: each proxy appends the address it saw, so the first hop that
    # is not one of our proxies is the client. Hops further left came from the
    # client itself and prove nothing.
    for hop in reversed(hops):
        parsed = _parse_ip(hop)
        if parsed is None:
            break
        address = str(parsed)
        if not _is_trusted(parsed, trusted_proxies):
            break
    return address


def client_key(address: str) -> str:
    """The client as the per-client limits count it: its IPv4 address, or its IPv6 /64."""
    parsed = _parse_ip(address)
    if isinstance(parsed, IPv6Address):
        return str(IPv6Network((parsed, IPV6_CLIENT_PREFIX), strict=False))
    return address


# --8<-- [end:client_address]


def _count(request: Request, route_class: str, decision: RateLimitDecision) -> None:
    metrics = request_state(request)["metrics"]
    if not decision.allowed:
        outcome = "limited"
    elif decision.degraded:
        outcome = "degraded"
    else:
        outcome = "allowed"
    metrics.rate_limit_decisions.labels(route_class, outcome).inc()


def _too_many_requests(decision: RateLimitDecision, policy: str) -> HTTPException:
    seconds = decision.retry_after_seconds
    return HTTPException(
        429,
        f"Too many requests: try again in {seconds} second{'s' if seconds != 1 else ''}.",
        headers=rate_limit_headers(decision, policy),
    )


async def _hit(
    request: Request, limiter: RedisRateLimiter, route_class: str, key: str, limit: RateLimit
) -> RateLimitDecision:
    decision = await limiter.hit(key, limit.count, limit.period_seconds)
    _count(request, route_class, decision)
    if not decision.allowed:
        raise _too_many_requests(decision, route_class)
    return decision


# --8<-- [start:api_limit]
def api_limit_key(request: Request, settings: Settings) -> str:
    """The general limit's Redis key: one count per client address."""
    return f"rl:api:{client_key(client_address(request, settings.trusted_proxies))}"


def apply_api_decision(request: Request, response: Response, decision: RateLimitDecision) -> None:
    """Count a general-limit decision; 429 if it refused, RateLimit headers if it counted."""
    _count(request, "api", decision)
    if not decision.allowed:
        raise _too_many_requests(decision, "api")
    # Failed open (Redis unavailable): nothing was counted, so there is nothing to report.
    if not decision.degraded:
        response.headers.update(rate_limit_headers(decision, "api"))


async def enforce_api_limit(request: Request, response: Response) -> None:
    """Count the request against its client's general limit (RATE_LIMIT); 429 past it.

    Authenticated routes do not depend on this: their token check counts the
    request in the same Redis call that checks the session (app/deps.py).
    """
    state = request_state(request)
    settings, limiter = state["settings"], state["api_limiter"]
    limit = settings.rate_limit
    decision = await limiter.hit(
        api_limit_key(request, settings), limit.count, limit.period_seconds
    )
    apply_api_decision(request, response, decision)


# --8<-- [end:api_limit]


async def enforce_login_limit(request: Request, email: str) -> None:
    """Count a password check against its client and its account (LOGIN_RATE_LIMIT); 429 past it.

    Every place that checks a password calls it (the login, and a password
    change's current_password), before the check: a refused guess then costs no
    hashing.
    """
    state = request_state(request)
    settings, limiter = state["settings"], state["login_limiter"]
    client = client_key(client_address(request, settings.trusted_proxies))
    # Per client: one address trying many accounts. Per account: many addresses
    # (a botnet) trying one account. The email is hashed: keys are not a user list.
    account = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    await _hit(request, limiter, "login", f"rl:login:ip:{client}", settings.login_rate_limit)
    await _hit(request, limiter, "login", f"rl:login:account:{account}", settings.login_rate_limit)
