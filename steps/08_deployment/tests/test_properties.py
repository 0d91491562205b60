"""Properties of the pure parsers and arithmetic, over inputs Hypothesis generates."""

import base64
import ipaddress
import json
import os
import string
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.config import RateLimit, Settings, SettingsError, load_settings
from app.ratelimit import LocalRateLimiter
from app.repository import InvalidCursorError, decode_cursor, encode_cursor

# The learner check of step 07: the tests its task "catch-properties" asks for.
pytestmark = pytest.mark.task("catch-properties")

PERIODS = {"second": 1, "minute": 60, "hour": 3600}

# Every offset datetime.timezone accepts: strictly inside a day either way.
zones = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
# Aware timestamps whose UTC instant is a valid datetime (a far-off zone at year
# 1 or 9999 has none; decode_cursor rejects those, tested below).
aware_datetimes = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=zones
)
spaces = st.text(alphabet=" \t", max_size=3)


def as_cursor(value: object) -> str:
    """Encode any JSON value the way encode_cursor does: a cursor of a forged payload."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def assert_rejected_or_a_valid_position(cursor: str) -> None:
    """The cursor is opaque, not signed: it is an InvalidCursorError (a 422) or a real position."""
    # Never another exception: that would be a 500.
    try:
        created_at, user_id = decode_cursor(cursor)
    except InvalidCursorError:
        return
    assert created_at.tzinfo is UTC
    assert isinstance(user_id, uuid.UUID)


# --- pagination cursors ---------------------------------------------------------------


@given(created_at=aware_datetimes, user_id=st.uuids())
def test_a_cursor_decodes_to_the_row_it_was_made_from_in_utc(
    created_at: datetime, user_id: uuid.UUID
) -> None:
    decoded_at, decoded_id = decode_cursor(encode_cursor(created_at, user_id))
    assert decoded_at == created_at
    assert decoded_at.tzinfo is UTC
    assert decoded_id == user_id


@given(cursor=st.text(max_size=80))
def test_any_text_as_a_cursor_is_rejected_or_read_never_crashes(cursor: str) -> None:
    assert_rejected_or_a_valid_position(cursor)


@given(created_at=aware_datetimes, user_id=st.uuids(), data=st.data())
def test_a_tampered_cursor_is_rejected_or_read_as_a_valid_position(
    created_at: datetime, user_id: uuid.UUID, data: st.DataObject
) -> None:
    cursor = encode_cursor(created_at, user_id)
    at = data.draw(st.integers(min_value=0, max_value=len(cursor) - 1), label="at")
    replacement = data.draw(st.sampled_from(string.printable), label="replacement")
    tampered = cursor[:at] + replacement + cursor[at + 1 :]
    assert_rejected_or_a_valid_position(tampered)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children)
    ),
    max_leaves=6,
)


@given(payload=json_values)
def test_a_cursor_of_any_other_json_shape_is_rejected(payload: object) -> None:
    # encode_cursor only makes [timestamp, uuid] pairs of strings; no other shape reads.
    with pytest.raises(InvalidCursorError):
        decode_cursor(as_cursor(payload))


@given(created_at=st.datetimes(), user_id=st.uuids())
def test_a_cursor_with_a_naive_timestamp_is_rejected(
    created_at: datetime, user_id: uuid.UUID
) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(as_cursor([created_at.isoformat(), str(user_id)]))


# --- rate limits ---------------------------------------------------------------------


@given(
    count=st.integers(min_value=1, max_value=10**9),
    unit=st.sampled_from(sorted(PERIODS)),
    padding=st.tuples(spaces, spaces, spaces, spaces),
)
def test_a_rate_limit_reads_its_count_and_period_whatever_the_spacing(
    count: int, unit: str, padding: tuple[str, str, str, str]
) -> None:
    before, after_count, after_slash, after = padding
    text = f"{before}{count}{after_count}/{after_slash}{unit}{after}"
    assert RateLimit.parse(text) == RateLimit(count=count, period_seconds=PERIODS[unit])


@given(text=st.text(max_size=20))
def test_any_text_as_a_rate_limit_is_refused_or_read_as_a_positive_count_per_period(
    text: str,
) -> None:
    try:
        limit = RateLimit.parse(text)
    except ValueError as error:
        refusal = str(error)
    else:
        assert limit.count >= 1
        assert limit.period_seconds in PERIODS.values()
        return
    assert "5/minute" in refusal


@given(unit=st.sampled_from(sorted(PERIODS)), zeros=st.integers(min_value=1, max_value=4))
def test_a_zero_rate_limit_is_refused(unit: str, zeros: int) -> None:
    with pytest.raises(ValueError, match="positive count"):
        RateLimit.parse(f"{'0' * zeros}/{unit}")


class FakeClock:
    """A clock the test moves by whole microseconds, as the limiter counts."""

    def __init__(self, microseconds: int) -> None:
        self.microseconds = microseconds

    def __call__(self) -> float:
        return self.microseconds / 1_000_000


limits = st.integers(min_value=1, max_value=50)
periods = st.sampled_from(sorted(PERIODS.values()))
start_times = st.integers(min_value=0, max_value=10**12)


@given(limit=limits, period=periods, start=start_times)
def test_a_new_client_gets_exactly_its_limit_in_a_burst_then_a_refusal(
    limit: int, period: int, start: int
) -> None:
    limiter = LocalRateLimiter(clock=FakeClock(start))
    burst = [limiter.hit("client", limit, period) for _ in range(limit)]
    assert all(decision.allowed for decision in burst)
    assert [decision.remaining for decision in burst] == list(range(limit - 1, -1, -1))
    refused = limiter.hit("client", limit, period)
    assert not refused.allowed
    assert refused.remaining == 0
    assert 0 < refused.retry_after <= period
    assert refused.retry_after_seconds >= 1


@given(limit=limits, period=periods, start=start_times, extra_refusals=st.integers(0, 5))
def test_a_refused_client_is_let_in_exactly_when_retry_after_has_passed(
    limit: int, period: int, start: int, extra_refusals: int
) -> None:
    clock = FakeClock(start)
    limiter = LocalRateLimiter(clock=clock)
    for _ in range(limit):
        limiter.hit("client", limit, period)
    refused = limiter.hit("client", limit, period)
    # Refusals spend nothing: asking again at the same instant gives the same wait.
    for _ in range(extra_refusals):
        assert limiter.hit("client", limit, period) == refused
    wait = round(refused.retry_after * 1_000_000)
    clock.microseconds += wait - 1
    assert not limiter.hit("client", limit, period).allowed
    clock.microseconds += 1
    assert limiter.hit("client", limit, period).allowed


@given(limit=limits, period=periods, start=start_times)
def test_one_clients_burst_leaves_another_clients_quota_whole(
    limit: int, period: int, start: int
) -> None:
    limiter = LocalRateLimiter(clock=FakeClock(start))
    for _ in range(limit + 1):
        limiter.hit("greedy", limit, period)
    other = limiter.hit("other", limit, period)
    assert other.allowed
    assert other.remaining == limit - 1


# --- list settings -------------------------------------------------------------------


@contextmanager
def environment(**variables: str) -> Iterator[None]:
    """Set these environment variables (upper-cased) for the duration: how an operator sets them."""
    with mock.patch.dict(os.environ, {name.upper(): value for name, value in variables.items()}):
        yield


def settings_from(**variables: str) -> Settings:
    """load_settings() with these environment variables set, as the service reads them at start."""
    with environment(**variables):
        return load_settings()


# Items as the settings accept them: no comma, no surrounding space, not JSON.
host_names = st.text(
    alphabet=string.ascii_lowercase + string.digits + ".-", min_size=1, max_size=20
)
origins = st.one_of(
    st.just("*"),
    st.builds(
        lambda scheme, host, port: f"{scheme}://{host}{port}",
        st.sampled_from(["http", "https"]),
        host_names,
        st.one_of(st.just(""), st.integers(1, 65535).map(lambda port: f":{port}")),
    ),
)
host_patterns = st.one_of(st.just("*"), host_names, host_names.map(lambda host: f"*.{host}"))


def written_both_ways(items: list[str], padding: str) -> tuple[str, str]:
    """The same list as JSON and as comma-separated values with spaces around each."""
    return json.dumps(items), ",".join(f"{padding}{item}{padding}" for item in items)


@given(items=st.lists(origins, min_size=1, max_size=5), padding=spaces)
def test_cors_origins_read_the_same_as_json_or_comma_separated(
    items: list[str], padding: str
) -> None:
    for written in written_both_ways(items, padding):
        assert settings_from(cors_origins=written).cors_origins == items


@given(items=st.lists(host_patterns, min_size=1, max_size=5), padding=spaces)
def test_trusted_hosts_read_the_same_as_json_or_comma_separated(
    items: list[str], padding: str
) -> None:
    for written in written_both_ways(items, padding):
        assert settings_from(trusted_hosts=written).trusted_hosts == items


networks = st.one_of(
    st.ip_addresses(v=4).flatmap(
        lambda address: st.integers(0, 32).map(
            lambda bits: ipaddress.ip_network(f"{address}/{bits}", strict=False)
        )
    ),
    st.ip_addresses(v=6).flatmap(
        lambda address: st.integers(0, 128).map(
            lambda bits: ipaddress.ip_network(f"{address}/{bits}", strict=False)
        )
    ),
)


@given(proxies=st.lists(networks, max_size=4), as_json=st.booleans())
def test_trusted_proxies_read_back_as_the_networks_written(
    proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network], as_json: bool
) -> None:
    texts = [str(network) for network in proxies]
    written = json.dumps(texts) if as_json else ", ".join(texts)
    assert settings_from(trusted_proxies=written).trusted_proxies == proxies


# What an environment variable can hold: any text but NUL and lone surrogates.
environment_values = st.text(
    alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30
)


@given(text=environment_values)
def test_any_text_as_trusted_proxies_is_refused_in_one_line_or_read_as_networks(
    text: str,
) -> None:
    try:
        settings = settings_from(trusted_proxies=text)
    except SettingsError as error:
        refusal = str(error)
    else:
        assert all(
            isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network)
            for network in settings.trusted_proxies
        )
        return
    assert "TRUSTED_PROXIES" in refusal
    assert "\n" not in refusal
