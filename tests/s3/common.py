"""What the Python S3 suites share: a boto3 client for a gateway of the test cluster.

The suites are run as scripts (`python3 tests/s3/NAME_suite.py`), so this directory is on
`sys.path` and `from common import s3_client` works.
"""
import os

import boto3
from botocore.config import Config


def s3_client(endpoint, access_key=None, secret_key=None, signature="s3v4", attempts=1,
              read_timeout=60):
    """A path-style boto3 S3 client on `endpoint` (region us-east-1), signing with the given
    key or with $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY; `signature` is botocore's
    signature version (`s3v4`, `s3` for SigV2, or `botocore.UNSIGNED`); `attempts` as
    botocore's `max_attempts` (1: a failure is seen, not retried)."""
    creds = {}
    if signature is not None and not _unsigned(signature):
        creds = {
            "aws_access_key_id": access_key or os.environ["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": secret_key or os.environ["AWS_SECRET_ACCESS_KEY"],
        }
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": attempts, "mode": "standard"},
            signature_version=signature,
            connect_timeout=10,
            read_timeout=read_timeout,
        ),
        **creds,
    )


def _unsigned(signature):
    from botocore import UNSIGNED
    return signature is UNSIGNED
