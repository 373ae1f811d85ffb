"""The faults configuration: what the sandbox does wrong, how often, and where.

Every kind is optional; an empty `Faults()` is a well-behaved API. Each fault kind may be scoped to some
endpoints by short name (`token` — covers token and refresh —, `upload`, `customer`, `attach`); no
`endpoints` means every endpoint. Where several entries of one kind match an endpoint the first one applies,
except rate limits, which all apply (an overall limit and a tighter per-endpoint one can coexist).
A kind may be given as one object or as a list of objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Endpoint = Literal["token", "upload", "customer", "attach"]
ENDPOINTS: tuple[Endpoint, ...] = ("token", "upload", "customer", "attach")

Share = float
Status5xx = Literal[500, 502, 503]


def _all_5xx() -> list[Status5xx]:
    return [500, 502, 503]


class _Scoped(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoints: list[Endpoint] | None = Field(
        default=None, description="Endpoints this entry applies to; none means all."
    )

    def applies_to(self, endpoint: str) -> bool:
        """Whether this entry is in force for `endpoint`."""
        return self.endpoints is None or endpoint in self.endpoints


class Latency(_Scoped):
    """Delay added before the request is handled (inside the attach in-progress window)."""

    distribution: Literal["fixed", "uniform", "exponential", "lognormal"] = "fixed"
    ms: float = Field(
        default=0.0, ge=0, description="fixed value; uniform minimum; exponential mean; lognormal median"
    )
    max_ms: float | None = Field(default=None, ge=0, description="uniform maximum; a cap for the others")
    sigma: float = Field(default=0.5, gt=0, description="lognormal shape")


class RateLimit(_Scoped):
    """A token bucket; requests beyond it are answered 429."""

    rps: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)
    retry_after: bool = Field(default=True, description="send a Retry-After header (whole seconds)")
    per_endpoint: bool = Field(default=False, description="one bucket per endpoint instead of one shared")


class RandomThrottle(_Scoped):
    """A share of requests answered 429 whatever the rate: a gateway's noise, not a limit a client can learn."""

    share: Share = Field(ge=0, le=1)
    retry_after: bool = Field(default=False, description="send `Retry-After: 1` with these 429s")


class Errors(_Scoped):
    """A share of requests answered with a 5xx before any work is done."""

    share: Share = Field(ge=0, le=1)
    statuses: list[Status5xx] = Field(default_factory=_all_5xx, min_length=1)


class Drop(_Scoped):
    """A share of requests whose connection is closed with no response, before any work is done."""

    share: Share = Field(ge=0, le=1)


class Slow(_Scoped):
    """A share of responses held back `seconds` after the work is done (a client timeout's favourite)."""

    share: Share = Field(default=1.0, ge=0, le=1)
    seconds: float = Field(gt=0)


class CommitThenFail(_Scoped):
    """A share of successful requests that are committed (recorded) and then answered 500 or dropped."""

    endpoints: list[Endpoint] | None = Field(default_factory=lambda: ["attach"])  # type: ignore[assignment]
    share: Share = Field(ge=0, le=1)
    mode: Literal["500", "drop", "either"] = "500"


class Html200(_Scoped):
    """A share of successful answers replaced, after the work is done, by a gateway's HTML page with status 200."""

    share: Share = Field(default=1.0, ge=0, le=1)


class Dribble(_Scoped):
    """A share of answers whose body is sent one byte at a time, `interval_s` apart (headers at once)."""

    share: Share = Field(default=1.0, ge=0, le=1)
    interval_s: float = Field(default=0.05, gt=0, le=10)


class HugeBody(_Scoped):
    """A share of successful answers padded with a JSON field to `mib` MiB, streamed (the sandbox's memory stays
    flat)."""

    share: Share = Field(default=1.0, ge=0, le=1)
    mib: float = Field(gt=0, le=4096)


class Hold(_Scoped):
    """Requests wait, after authentication and before any work, until ``POST /_sandbox/release`` opens the gate (or
    new faults replace these): a run held mid-flight for exactly as long as a test needs, whatever the machine's
    speed."""


class RefuseParties(BaseModel):
    """Attach requests carrying one of these parties are answered 400 and nothing of them is applied, as Fin's own
    checks refuse a document they cannot accept (a number that fails its checksum, an unreadable scan)."""

    model_config = ConfigDict(extra="forbid")

    party_ids: list[str] = Field(min_length=1)
    name_path: bool = Field(
        default=True,
        description="name each refused party's path in `data`, as the contract documents; false: `data` is empty",
    )


def _as_list(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, dict | BaseModel):
        return [value]
    return value


class Faults(BaseModel):
    """The whole faults file. Example::

    {"seed": 7,
     "latency": {"distribution": "uniform", "ms": 5, "max_ms": 50},
     "rate_limit": [{"rps": 50, "burst": 10},
                    {"rps": 5, "burst": 5, "endpoints": ["attach"], "retry_after": false}],
     "random_429": {"share": 0.1},
     "errors": {"share": 0.05, "statuses": [502, 503]},
     "drop": {"share": 0.02, "endpoints": ["upload"]},
     "slow": {"share": 0.01, "seconds": 30},
     "token_expiry_seconds": 600,
     "commit_then_fail": {"share": 0.05, "mode": "either"},
     "refuse_parties": {"party_ids": ["<uuid>"], "name_path": true},
     "html_200": {"share": 0.1, "endpoints": ["attach"]},
     "dribble": {"share": 0.1, "interval_s": 0.05},
     "huge_body": {"mib": 300, "endpoints": ["customer"]},
     "hold": {"endpoints": ["upload"]},
     "token_ttl_literal": "Infinity"}
    """

    model_config = ConfigDict(extra="forbid")

    seed: int | None = Field(default=None, description="same seed, same fate for the n-th request")
    latency: list[Latency] = Field(default_factory=list)
    rate_limit: list[RateLimit] = Field(default_factory=list)
    random_429: list[RandomThrottle] = Field(default_factory=list)
    errors: list[Errors] = Field(default_factory=list)
    drop: list[Drop] = Field(default_factory=list)
    slow: list[Slow] = Field(default_factory=list)
    commit_then_fail: list[CommitThenFail] = Field(default_factory=list)
    html_200: list[Html200] = Field(default_factory=list)
    dribble: list[Dribble] = Field(default_factory=list)
    huge_body: list[HugeBody] = Field(default_factory=list)
    hold: list[Hold] = Field(default_factory=list)
    token_ttl_literal: str | None = Field(
        default=None,
        pattern=r"^(-?Infinity|NaN|-?\d{1,400}(\.\d{1,20})?([eE][+-]?\d{1,4})?)$",
        description="token answers carry this JSON literal as access_token_ttl (Infinity, NaN, -1, 1e400)",
    )
    refuse_parties: RefuseParties | None = Field(
        default=None, description="parties whose documents the attach endpoint refuses (400)"
    )
    token_expiry_seconds: float | None = Field(
        default=None,
        ge=0,
        description="access tokens stop working this long after issue, whatever their ttl says",
    )

    revoke_previous_tokens: bool = Field(
        default=False,
        description="a new access token (issued or refreshed) ends the client's earlier ones at once",
    )

    _list_fields = field_validator(
        "latency", "rate_limit", "random_429", "errors", "drop", "slow", "commit_then_fail", "html_200", "dribble",
        "huge_body", "hold", mode="before"
    )(_as_list)

    @classmethod
    def load(cls, path: str | Path) -> Faults:
        """Read and validate a faults JSON file."""
        return cls.model_validate_json(Path(path).read_bytes())

    def first(self, kind: str, endpoint: str) -> Any:
        """The first entry of `kind` that applies to `endpoint`, or None."""
        for entry in getattr(self, kind):
            if entry.applies_to(endpoint):
                return entry
        return None

    @property
    def active(self) -> bool:
        """Whether any fault is configured (a quiet sandbox skips the random draws)."""
        return bool(
            self.latency or self.rate_limit or self.random_429 or self.errors or self.drop or self.slow
            or self.commit_then_fail or self.answers_misshapen
        )

    @property
    def answers_misshapen(self) -> bool:
        """Whether answers are garbled (an HTML 200, a dribbled or a huge body): they draw from a stream of their
        own, so turning them on leaves every other fate of a seed as it was."""
        return bool(self.html_200 or self.dribble or self.huge_body)
