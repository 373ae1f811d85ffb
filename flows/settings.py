"""The one settings object: every knob of a run, read from the environment.

API settings keep the vendor-style names (``FIN_API_URL``, ``FIN_CLIENT_ID``, ``FIN_CLIENT_SECRET``);
everything else is ``KYC_ATTACH_<FIELD>``. S3 goes through boto3's default credential chain and honours
``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3``, so nothing about S3 credentials lives here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from connectors.errors import SetupError
from connectors.rate_limiter import Endpoint
from connectors.secret_block import block_name_problem

#: The least limit an endpoint may be told (requests/s): a denormal one underflows to 0 in a fanned-out shard run's
#: share and crashes it.
MIN_ENDPOINT_RPS = 0.01


class Settings(BaseSettings):
    """Configuration of a kyc-attach run. Secrets are ``SecretStr`` and never printed."""

    model_config = SettingsConfigDict(env_prefix="KYC_ATTACH_", extra="ignore")

    api_url: str = Field(
        "https://sandbox.api.fin.com",
        validation_alias=AliasChoices("FIN_API_URL", "KYC_ATTACH_API_URL"),
        description="Base URL of the Fin API.",
    )
    client_id: str = Field(
        "", validation_alias=AliasChoices("FIN_CLIENT_ID"), description="OAuth client id for the Fin API."
    )
    client_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("FIN_CLIENT_SECRET"),
        description="OAuth client secret for the Fin API.",
    )
    fin_client_secret_block: str | None = Field(
        None, description="Name of a Prefect Secret block holding the OAuth client secret, read from the Prefect "
        "server at start-up instead of FIN_CLIENT_SECRET; fanned-out shard runs are given the name and read it too.",
    )
    aws_credentials_block_documents: str | None = Field(
        None, description="Name of a prefect-aws AwsCredentials block that reads the source documents; unset: "
        "boto3's default credential chain. Shard runs are given the name and read the block too.",
    )
    aws_credentials_block_manifest: str | None = Field(
        None, description="Name of an AwsCredentials block that reads the manifest; unset: the default chain.",
    )
    aws_credentials_block_report: str | None = Field(
        None, description="Name of an AwsCredentials block for the report, the ledger and the run's work files; "
        "unset: the default chain.",
    )
    rate_limit_rps: float = Field(
        10.0, gt=0, description="Ceiling on API requests per second, for each endpoint and all together."
    )
    endpoint_rate_limits_rps: dict[Endpoint, Annotated[float, Field(ge=MIN_ENDPOINT_RPS, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="Tighter ceilings (requests/s) of single endpoints, as JSON: "
        '{"attach": 10} when the API documents a lower limit for attach. Endpoints: token, customer, upload, attach.',
    )
    rate_burst_s: float = Field(
        0.05, gt=0, le=1, description="Client-side burst, in seconds of the current rate (at least one request)."
    )
    throttle_budget_s: float = Field(
        600.0, gt=0, description="How long one request may keep getting 429s before its rows fail as throttled."
    )
    max_concurrent_requests: int = Field(
        16, ge=1, description="Uploads in flight at once; the other API requests have a quarter as many of their own."
    )
    max_concurrent_customers: int = Field(64, ge=1, description="Customers worked on at once in a shard.")
    max_parties_per_request: int = Field(10, ge=1, description="Associated parties per attach request.")
    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1, description="Largest source file accepted for upload.")
    request_timeout_s: float = Field(60.0, gt=0, description="Timeout of one HTTP request to the API.")
    max_attempts: int = Field(6, ge=1, description="Attempts per request on transient errors (5xx, drops).")
    settle_delay_s: float = Field(
        1.0, ge=0, description="Wait before asking the API whether an attach with a lost response took effect."
    )
    trust_initiated_as_not_applied: bool = Field(
        False, description="Read a party still INITIATED after a lost attach answer as 'not applied' and resend; "
        "only for an operator who confirmed with Fin that the status moves at once (README, exactly once).",
    )
    rework_rejected_nights: int = Field(
        3, ge=0, description="Nights the nightly deployment works a complete job's rows rejected missing_object or "
        "party_not_found again (objects restored, parties fixed at Fin); after that they stay rejected.",
    )
    rejections_fail_run: bool = Field(
        False, description="End a run with rejected rows (bad input) in a Failed state too, as failed or unknown "
        "rows always do; its report is written either way.",
    )
    conflict_wait_s: float = Field(120.0, ge=0, description="How long to wait out 409 'attach in progress'.")
    shard_rows: int = Field(20_000, ge=1, description="Target rows per shard (the unit of work and checkpoint).")
    max_shards: int = Field(400, ge=1, description="Upper bound on shards, so task runs stay in the hundreds.")
    shard_concurrency: int = Field(4, ge=1, description="Shards worked on at once in one flow run.")
    shard_deployment: str | None = Field(
        None, description="Fan shards out as runs of this deployment ('flow/deployment'); unset: one process."
    )
    work_uri: str | None = Field(
        None, description="s3://bucket/prefix where a fanned-out run shares shard rows files and report parts."
    )
    fanout_concurrency: int = Field(32, ge=1, description="Shard runs in flight at once when fanning out.")
    lease_stale_s: float = Field(
        300.0, ge=1, description="A run's lease on its customers stops counting this long after the last heartbeat "
        "of the run and its shard runs, by the store's clock (each renews every fifth of it).",
    )
    rate_limit_name: str = Field(
        "kyc-attach-fin-api",
        description="Name of the API rate shared by fanned-out shard runs: those tagged with it split "
                    "KYC_ATTACH_RATE_LIMIT_RPS evenly.",
    )
    batch_rows: int = Field(65_536, ge=1, description="Rows per record batch when reading the manifest.")
    allowed_buckets: list[str] = Field(
        default_factory=list, description="S3 buckets documents may come from (empty: any bucket)."
    )
    residence_permit_needs_both_sides: bool = Field(
        False, description="Ask FRONT and BACK for RESIDENCE_PERMIT (the seed page says one image)."
    )
    address_max_age_days: int = Field(90, ge=1, description="Oldest address document accepted, in days.")
    work_dir: Path = Field(Path(".kyc-attach"), description="Local folder for shards and run state.")
    ledger_uri: str | None = Field(
        None, description="Where the ledger lives (s3://bucket/prefix or a folder): one per Fin tenant (API URL and "
        "client id), the same for every run and deployment against it, whatever their report locations. Unset: "
        "<work_dir>/ledger, for runs on one machine only; a deployment sets an s3:// prefix.",
    )
    work_compression: Literal["none", "lz4", "zstd"] = Field(
        "none", description="Compression of the plan's rows file: none ~250 bytes a row on disk; lz4 ~95 (the plan "
        "~25% slower); zstd ~50 (~35% slower). Also used for the rows shipped to fanned-out shards.",
    )
    # A Literal, not a str: "" (no encryption at all) and typos such as "AES-256" are refused at start-up.
    s3_sse: Literal["AES256", "aws:kms"] = Field(
        "AES256", description="Server-side encryption for S3 writes: AES256 or aws:kms."
    )
    s3_kms_key_id: str | None = Field(None, description="KMS key id when s3_sse is aws:kms.")
    expected_bucket_owner: str | None = Field(None, description="Account id every S3 call must match.")
    fail_ratio: float = Field(0.5, ge=0, le=1, description="Stop early above this share of failed requests...")
    fail_min_attempts: int = Field(1000, ge=1, description="...once at least this many were attempted.")
    report_s3_uri: Literal["full", "hashed"] = Field(
        "full", description="The s3_uri and source_file columns of the report (rows.parquet, rows.csv): full, or "
        "hashed (the bucket and an HMAC-SHA256 of the key, keyed by the ledger's secret, for archives whose keys "
        "carry people's names).",
    )

    @field_validator("fin_client_secret_block", "aws_credentials_block_documents", "aws_credentials_block_manifest",
                     "aws_credentials_block_report")
    @classmethod
    def _block_name(cls, value: str | None) -> str | None:
        problem = block_name_problem(value) if value is not None else None
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("rate_limit_name")
    @classmethod
    def _rate_name(cls, value: str) -> str:
        if value.endswith(":sending"):  # its runs' tag would be the tag another name's runs sending carry
            raise ValueError("ends with ':sending', the mark of the shard runs sending under a shared rate")
        return value

    def has_credentials(self) -> bool:
        """Whether API client credentials are configured (a dry run then looks parties up by email)."""
        return bool(self.client_id and (self.client_secret.get_secret_value() or self.fin_client_secret_block))

    def require_api_credentials(self) -> None:
        """``SetupError`` naming the credential that is not set: a run that would call the API says so before it
        plans, rather than as the API's refusal of empty credentials."""
        # With a Secret block the secret is read (and checked) when the Fin client is built.
        secret = self.fin_client_secret_block or self.client_secret.get_secret_value()
        missing = [name for name, value in (("FIN_CLIENT_ID", self.client_id), ("FIN_CLIENT_SECRET", secret))
                   if not value.strip()]
        if missing:
            raise SetupError(" and ".join(missing) + (" is" if len(missing) == 1 else " are") + " not set")

    def public_dict(self) -> dict[str, Any]:
        """Settings for reports and artifacts: secrets and credentials left out."""
        data = self.model_dump(mode="json", exclude={"client_secret", "client_id"})
        # A second line of defence: the start-up gate refuses URLs with user info, but nothing stored shows it.
        return {k: without_user_info(v) if isinstance(v, str) else v for k, v in data.items()}


def without_user_info(text: str) -> str:
    """``text`` as a URL without its ``user:password@`` part, query and fragment (places where secrets hide);
    anything that is not a URL is returned as it is."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if not parts.scheme or ("@" not in parts.netloc and not parts.query and not parts.fragment):
        return text
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2], query="", fragment=""))


def known_env_names() -> frozenset[str]:
    """Every environment variable a setting is read from (its aliases included)."""
    names = set()
    for field, info in Settings.model_fields.items():
        names.add(env_name(field))
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(a for a in alias.choices if isinstance(a, str))
    return frozenset(names)


def env_name(field: str) -> str:
    """The environment variable a settings field is read from."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    return f"KYC_ATTACH_{field.upper()}"


def load_settings() -> Settings:
    """The settings from the environment; a malformed one is a ``SetupError`` naming the variable and the reason.

    Pydantic's own message quotes the value it refused; a value may be a secret, so only the reason is kept.
    A ``KYC_ATTACH_*`` variable that names no setting is refused too: a misspelt allow-list or encryption
    setting would otherwise leave that control silently at its default.
    """
    unknown = sorted(k for k in os.environ if k.startswith("KYC_ATTACH_") and k not in known_env_names())
    if unknown:
        raise SetupError(f"setting {unknown[0]}: no such setting (misspelt?); the README's configuration table "
                         "lists them")
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else ""
        name = env_name(field) if field in Settings.model_fields else field or "a setting"
        raise SetupError(f"setting {name}: {first['msg']}") from None
    except SettingsError as exc:  # a list or object setting that is not JSON; the message names only the field
        found = re.search(r'field "(\w+)"', str(exc))
        name = env_name(found.group(1)) if found and found.group(1) in Settings.model_fields else "a setting"
        raise SetupError(f"setting {name}: the value is not valid JSON") from None
