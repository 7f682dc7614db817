"""The archiver writing to S3 with Object Lock (a moto server on loopback, through boto3)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from helpers.moto_server import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    make_locked_bucket,
    moto_s3_server,
    raw_client,
)
from helpers.pipeline_checks import (
    archived_count,
    finish_producer,
    run_producer,
    store_of,
    wait_until,
)
from helpers.stages import Stage

from sealtrail.archive import RetentionError
from sealtrail.cli.main import main
from sealtrail.config import Settings

pytestmark = pytest.mark.s3

AWS_ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
           "AWS_REGION": REGION}


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with moto_s3_server() as endpoint:
        make_locked_bucket(endpoint, "audit-archive")
        yield endpoint


def test_archive_to_s3_object_lock_then_verify(
    settings: Settings, stages: list[Stage], tmp_path: Path, s3: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every archived object carries COMPLIANCE retention until the configured date, a
    locked version cannot be deleted, and verify passes over the S3 archive."""
    s = dataclasses.replace(settings, archive_url="s3://audit-archive/prod/audit",
                            s3_endpoint_url=s3, retention_days=400)
    started = datetime.now(UTC)
    stages.append(Stage(s, "seal", tmp_path / "seal.log"))
    stages.append(Stage(s, "archive", tmp_path / "archive.log", env=AWS_ENV))
    emitted = finish_producer(run_producer(s, "billing", 500))["emitted"]
    store = store_of(s)
    wait_until(lambda: archived_count(store) >= emitted, 60, "archive to S3",
               alive=lambda: all(x.alive() for x in stages))
    for stage in stages:
        assert stage.stop() == 0, stage.output()
    client = raw_client(s3)
    objects = client.list_object_versions(Bucket="audit-archive", Prefix="prod/audit/chains/")
    versions = objects["Versions"]
    assert len(versions) >= 2 * settings.partitions  # a segment and a checkpoint per chain
    low = started + timedelta(days=400) - timedelta(minutes=1)
    high = datetime.now(UTC) + timedelta(days=400, minutes=1)
    for version in versions:
        head = client.head_object(Bucket="audit-archive", Key=version["Key"],
                                  VersionId=version["VersionId"])
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert low <= head["ObjectLockRetainUntilDate"] <= high
    victim = versions[0]
    with pytest.raises(ClientError):
        client.delete_object(Bucket="audit-archive", Key=victim["Key"],
                             VersionId=victim["VersionId"])
    with pytest.raises(RetentionError):
        store.delete(victim["Key"].removeprefix("prod/audit/"))
    os.environ["SEALTRAIL_S3_ENDPOINT_URL"] = s3
    try:
        code = main(["verify", "s3://audit-archive/prod/audit", "--keys",
                     str(s.keys / "public.json"), "--json"])
    finally:
        del os.environ["SEALTRAIL_S3_ENDPOINT_URL"]
    out = capsys.readouterr().out
    assert code == 0, out
    assert '"ok": true' in out
