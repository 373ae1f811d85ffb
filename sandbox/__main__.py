"""`python -m sandbox --world WORLD.json [--faults FAULTS.json] [--admin]`: the sandbox without the CLI."""

from __future__ import annotations

import argparse

from sandbox.server import serve


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Local Fin API sandbox")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--world", required=True)
    parser.add_argument("--faults")
    parser.add_argument("--admin", action="store_true", help="enable the /_sandbox/* routes")
    parser.add_argument("--token-ttl-seconds", type=int, default=86400)
    parser.add_argument("--wrap-token-in-data", action="store_true")
    parser.add_argument("--max-upload-bytes", type=int, default=50 * 1024 * 1024)
    parser.add_argument("--residence-permit-needs-both-sides", action="store_true")
    args = parser.parse_args(argv)
    serve(
        args.host,
        args.port,
        args.world,
        args.faults,
        admin=args.admin,
        token_ttl_seconds=args.token_ttl_seconds,
        wrap_token_in_data=args.wrap_token_in_data,
        max_upload_bytes=args.max_upload_bytes,
        residence_permit_needs_both_sides=args.residence_permit_needs_both_sides,
    )


if __name__ == "__main__":
    main()
