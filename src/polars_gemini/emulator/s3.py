"""An S3-compatible server on 127.0.0.1 for tests: moto's server mode (the PyPI package `moto[server]`), in memory.

It honours what a checkpoint in object storage relies on: conditional writes (`If-None-Match: *` to create only,
`If-Match: <etag>` to replace only that version), listing by prefix, ranged reads. obstore, boto3 and Polars
(`pl.read_parquet("s3://...", storage_options=...)`) work against it with `storage_options()`.

    >>> with S3Emulator() as s3:
    ...     s3.create_bucket("pg-runs")
    ...     options = s3.storage_options()
    ...     sorted(options)
    ['aws_access_key_id', 'aws_endpoint_url', 'aws_region', 'aws_secret_access_key']

The credentials are fixed test values, passed explicitly, so no client looks for real ones (no instance metadata
server is asked). Needs the `dev` extra (`moto[server]`).
"""

from __future__ import annotations

import logging
from typing import Any

from polars_gemini.emulator._served import ServedInThread

__all__ = ["CREDENTIALS", "S3Emulator"]

_INSTALL = "pip install 'moto[server]' (in polars-gemini's dev extra)"
CREDENTIALS = {"aws_access_key_id": "testing-key", "aws_secret_access_key": "testing-secret", "aws_region": "us-east-1"}
"""The fixed test credentials the server takes (it checks none), as `storage_options` keys."""


class S3Emulator(ServedInThread):
    """moto's S3 on `host:port` (port 0: a free one), served from a daemon thread."""

    _NAME = "The S3 emulator"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        super().__init__()

    def start(self) -> S3Emulator:
        """Binds the port and starts serving; returns `self`."""
        if self._server is not None:
            return self
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise RuntimeError(f"S3Emulator needs moto's server mode: {_INSTALL}.") from None
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request on stderr
        server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        server.start()
        self._server = server
        return self

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`, the endpoint URL."""
        host, port = self._running().get_host_and_port()
        return f"http://{host}:{port}"

    def storage_options(self) -> dict[str, str]:
        """Credentials and endpoint as Polars and `checkpoint=` take them (`storage_options=`)."""
        return {"aws_endpoint_url": self.url, **CREDENTIALS}

    def environ(self) -> dict[str, str]:
        """The same as environment variables (`AWS_ENDPOINT_URL`, ...), for code that reads the environment."""
        return {**{k.upper(): v for k, v in self.storage_options().items()}, "AWS_ALLOW_HTTP": "true"}

    def client(self) -> Any:
        """A boto3 S3 client of this server (boto3 comes with moto)."""
        import boto3  # type: ignore[import-untyped,unused-ignore]

        return boto3.client("s3", endpoint_url=self.url, aws_access_key_id=CREDENTIALS["aws_access_key_id"],
                            aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
                            region_name=CREDENTIALS["aws_region"])  # fmt: skip

    def create_bucket(self, name: str) -> None:
        """Create a bucket (3 to 63 characters: lowercase letters, digits, dots, hyphens)."""
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in `bucket` under `prefix`, sorted."""
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))
