"""An S3-compatible server on loopback (moto's server mode), for the demo and the tests.

It speaks real S3 over HTTP; boto3 is pointed at it with the standard ``AWS_ENDPOINT_URL`` variable,
exactly as it would be pointed at any other S3 endpoint.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

from connectors.errors import SetupError


@contextmanager
def local_s3_server(*, set_env: bool = True) -> Iterator[str]:
    """Run an S3 server on 127.0.0.1 (a free port) and yield its endpoint URL.

    With ``set_env`` the process's AWS variables point boto3 at it (dummy credentials, us-east-1) and
    are restored afterwards.
    """
    try:
        from moto.server import ThreadedMotoServer  # imported here: only the demo and tests need it
    except ImportError:
        raise SetupError("the demo's S3 server is an optional part: install it with `uv sync --extra demo` "
                         "(or pip install 'kyc-attach[demo]'); `make demo` does") from None

    # werkzeug logs every request line, S3 keys included: keys can name people, so keep them out of logs.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _ENV}
    if set_env:
        os.environ.update({
            "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
        })
    try:
        yield endpoint
    finally:
        server.stop()
        if set_env:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
