"""The storage handle of a process (local paths, and S3 with the project's write policy), built from the settings.

Apart from ``flows.runtime`` (the HTTP client, the limiters) so that commands that only read or write files
(``validate``, ``report``, ``history``) start without loading the HTTP stack.
"""

from __future__ import annotations

from connectors.errors import SetupError
from connectors.objects import ObjectStore
from connectors.s3 import S3Store, make_s3_client
from flows.settings import Settings, env_name


def make_s3_store(settings: Settings, role: str = "report") -> S3Store:
    """The S3 store with the project's write policy for ``role`` (documents, manifest, report): from the
    ``AwsCredentials`` block its setting names, else from boto3's default credential chain."""
    field = f"aws_credentials_block_{role}"
    block = getattr(settings, field)
    session = None
    if block:
        from connectors.aws_credentials import aws_session  # prefect-aws only when a block is named

        try:
            session = aws_session(block)
        except SetupError as exc:
            raise SetupError(f"{env_name(field)}: {exc}") from None
    return S3Store(
        make_s3_client(max_pool_connections=max(settings.max_concurrent_requests * 2, 32), session=session),
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
        expected_bucket_owner=settings.expected_bucket_owner,
    )


def make_store(settings: Settings, *, s3: bool = True,
               roles: tuple[str, ...] = ("documents", "manifest")) -> ObjectStore:
    """The one storage handle of a process: local paths, and with ``s3`` the S3 stores above, one per role of
    ``roles`` that names its own credentials (documents, manifest; the report and ledger role is the default one).
    A command that uses fewer roles names only those: it reads no block it has no use for."""
    if not s3:
        return ObjectStore(None)
    # A role without a block reads with the default chain, also when the report role names one.
    own = {role: make_s3_store(settings, role) for role in roles
           if getattr(settings, f"aws_credentials_block_{role}") or settings.aws_credentials_block_report}
    return ObjectStore(make_s3_store(settings), **own)
