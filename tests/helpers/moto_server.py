"""A real moto S3 server in a subprocess on loopback, for tests that go through boto3.

Plain helper module (not a conftest): import ``moto_s3_server`` and ``make_locked_bucket``.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=0.5):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


@contextlib.contextmanager
def moto_s3_server(startup_timeout: float = 20.0) -> Iterator[str]:
    """Run ``python -m moto.server`` on a free loopback port; yield its endpoint URL."""
    with tempfile.TemporaryFile() as log:
        for _attempt in range(3):  # the free port may be taken between probe and bind
            port = _free_port()
            endpoint = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + startup_timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if _answers(endpoint + "/moto-api/"):
                    break
                time.sleep(0.05)
            if proc.poll() is None and _answers(endpoint + "/moto-api/"):
                break
            _stop(proc)
        else:
            log.seek(0)
            output = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"moto server did not start on loopback; output:\n{output}")
        try:
            yield endpoint
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def raw_client(endpoint: str) -> Any:
    """A plain boto3 S3 client for the moto server, with explicit test credentials."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def make_locked_bucket(endpoint: str, name: str) -> None:
    """Create bucket ``name`` with Object Lock enabled (hence versioned)."""
    raw_client(endpoint).create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
