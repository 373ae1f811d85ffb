"""The process's storage handle, from the settings (kept apart from ``flows.runtime``, which brings the Fin
client and Prefect: a ledger look-up needs storage only)."""

from __future__ import annotations

from connectors.objects import ObjectStore
from connectors.s3 import S3Store, make_s3_client
from flows.settings import Settings


def make_s3_store(settings: Settings) -> S3Store:
    """The S3 store with the project's write policy, from boto3's default credential chain."""
    return S3Store(
        make_s3_client(max_pool_connections=max(settings.max_concurrent_requests * 2, 32)),
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
        expected_bucket_owner=settings.expected_bucket_owner,
    )


def make_store(settings: Settings, *, s3: bool = True) -> ObjectStore:
    """The one storage handle of a process: local paths, and with ``s3`` the S3 store above."""
    return ObjectStore(make_s3_store(settings) if s3 else None)
