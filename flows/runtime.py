"""Builds the IO objects of one process from the settings: one S3 client, one HTTP client, one limiter, and
the run's mode and the services every shard of the process is worked with (``flows.shard_services``).

Kept apart from the flow so the flow reads as the data's way through, and so tests can see what a run
is built from.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import httpx
from pydantic import SecretStr

from connectors.aiohttp_transport import Transport
from connectors.errors import SetupError
from connectors.fin import FinClient, small_request_slots
from connectors.objects import ObjectStore
from connectors.rate_limiter import EndpointLimiters
from connectors.rate_share import SHARED_BURST_S, RateShare, share_each, share_of_rate
from connectors.s3 import Location
from connectors.secret_block import read_secret_block
from flows.run_rules import rules_from
from flows.settings import Settings
from flows.shard_services import DryRunMode, LiveMode, RunMode, ShardServices
from transforms.run_timeline import Timeline
from transforms.thresholds import FailureBudget


async def client_secret(settings: Settings) -> SecretStr:
    """The OAuth client secret: from the Prefect Secret block the settings name (read once per process), else
    ``FIN_CLIENT_SECRET``."""
    if settings.fin_client_secret_block:
        return await read_secret_block(settings.fin_client_secret_block)
    return settings.client_secret


def check_api_url(url: str) -> None:
    """Plain HTTP is for loopback sandboxes only: credentials and documents never cross a network unencrypted.

    User info (``https://user:pass@host``) is refused too: the API takes OAuth client credentials from their own
    settings, and a password in a URL ends up wherever the URL is shown. The message never repeats the URL.
    """
    try:
        parsed = urlparse(url)
        has_user_info = parsed.username is not None or parsed.password is not None
    except ValueError:  # a malformed port or bracketed host
        raise SetupError("api_url: not a valid URL") from None
    if has_user_info:
        raise SetupError("api_url: the URL holds a user name or password; give credentials as FIN_CLIENT_ID "
                         "and FIN_CLIENT_SECRET")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SetupError("api_url: not an http(s) URL")
    if parsed.query or parsed.fragment or "?" in url or "#" in url:
        # A base URL has neither; a token or secret put there would be stored wherever settings are shown.
        raise SetupError("api_url: the URL has a query or fragment (?… or #…); give the base URL only")
    if parsed.scheme == "http" and not _is_loopback(parsed.hostname):
        raise SetupError("api_url: plain http is only allowed for a loopback sandbox; use https")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@asynccontextmanager
async def fin_client(settings: Settings, *, rate_share: RateShare | None = None) -> AsyncIterator[FinClient]:
    """One pooled HTTP client and one set of rate limiters (one per endpoint) for every request of this process.

    With ``rate_share`` (a fanned-out shard run) the limiters' ceiling is this run's share of the rate shared by
    the shard runs sending at the same time (``connectors.rate_share``), not ``settings.rate_limit_rps``: the share
    the parent expects until the shard sends (``shard_services``).
    """
    check_api_url(settings.api_url)
    secret = await client_secret(settings)
    # boto3 reads S3 in worker threads; the default pool (cores + 4) would cap concurrent file reads.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=settings.max_concurrent_requests + 8, thread_name_prefix="kyc-io")
    )
    connections = settings.max_concurrent_requests + small_request_slots(settings.max_concurrent_requests)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(settings.request_timeout_s, connect=10.0)
    # sharing the rate, each run's bursts would add up: one request in hand each (connectors.rate_share)
    limiter = EndpointLimiters(settings.rate_limit_rps, endpoint_ceilings=settings.endpoint_rate_limits_rps,
                               burst_s=settings.rate_burst_s if rate_share is None else SHARED_BURST_S)
    # aiohttp carries the requests: httpcore's pool costs ~30% of the CPU at 200 req/s (docs/design/sharding.md).
    transport = Transport(limits=limits)
    if rate_share is not None:  # till the shard sends and counts the others (shard_services): the share expected
        limiter.set_ceiling(share_each(rate_share.total_rps, rate_share.expected_runs))
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=timeout, transport=transport) as http:
        yield FinClient(
            http,
            client_id=settings.client_id,
            client_secret=secret,
            limiter=limiter,
            max_in_flight=settings.max_concurrent_requests,
            max_attempts=settings.max_attempts,
            conflict_wait_s=settings.conflict_wait_s,
            throttle_budget_s=settings.throttle_budget_s,
        )


@asynccontextmanager
async def run_mode(settings: Settings, *, dry_run: bool, payloads_dir: Path, timeline: Timeline,
                   rate_share: RateShare | None = None) -> AsyncIterator[RunMode]:
    """The mode of this process's run; a live one holds an authenticated client (counting requests per second
    into ``timeline``) until the block ends. ``rate_share``: see :func:`fin_client`."""
    if dry_run:
        if not settings.has_credentials():
            yield DryRunMode(payloads_dir)
            return
        async with fin_client(settings, rate_share=rate_share) as reader:  # customer look-ups only
            reader.stats.per_second = timeline
            yield DryRunMode(payloads_dir, reader)
        return
    async with fin_client(settings, rate_share=rate_share) as fin:
        fin.stats.per_second = timeline
        if rate_share is None:  # sharing the rate, the token request waits for the share (shard_services)
            await fin.authenticate()
        yield LiveMode(fin)


def shard_services(settings: Settings, mode: RunMode, *, store: ObjectStore, run_date: date,
                   ledger_root: Location, run_id: str, resend_unknown: bool, allow_reattach: bool,
                   only_rows: frozenset[int] | None, timeline: Timeline,
                   rate_share: RateShare | None = None) -> ShardServices:
    """The services of every shard this process works, from the settings and the run's own choices."""
    return ShardServices(
        sending=_sending(mode, rate_share),
        store=store, mode=mode, rules=rules_from(settings, run_date), ledger_root=ledger_root,
        max_file_bytes=settings.max_file_bytes,
        max_concurrent_customers=settings.max_concurrent_customers,
        max_concurrent_uploads=settings.max_concurrent_requests,
        budget=FailureBudget(max_ratio=settings.fail_ratio, min_attempts=settings.fail_min_attempts),
        settle_delay_s=settings.settle_delay_s,
        resend_unknown=resend_unknown,
        allow_reattach=allow_reattach,
        trust_initiated_as_not_applied=settings.trust_initiated_as_not_applied,
        run_id=run_id,
        only_rows=only_rows,
        timeline=timeline,
    )


def _sending(mode: RunMode, rate_share: RateShare | None) -> Callable[[], AbstractAsyncContextManager[None]]:
    """What a shard holds while it sends: a fanned-out shard run's share of the API rate, counted among the runs
    sending only then, not while it reads its rows and ledger or writes its report (``connectors.rate_share``).
    A live run asks for its first token inside it: a request sent before the run is counted comes on top of the
    rate the counted runs share."""
    if rate_share is None or mode.fin is None:
        return nullcontext
    fin = mode.fin
    first_token = isinstance(mode, LiveMode)  # a dry run's reader gets its token with its first look-up

    @asynccontextmanager
    async def held() -> AsyncIterator[None]:
        nonlocal first_token
        async with share_of_rate(rate_share.tag, rate_share.total_rps, fin.limiter.set_ceiling,
                                 expected_runs=rate_share.expected_runs):
            if first_token:
                await fin.authenticate()  # SetupError when the credentials are refused, before any other request
                first_token = False
            yield

    return held
