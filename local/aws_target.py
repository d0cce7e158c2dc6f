"""The CLI against a deployed stack: its URL from CloudFormation, requests SigV4-signed.

The deployed API authorizes ``/jobs*`` (and by default ``/predict``) with IAM, so every
request is signed for ``execute-api`` by botocore's own signer, with the credentials boto3
finds as usual (environment, ``AWS_PROFILE``/``--profile``, SSO, instance roles).
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

import httpx

#: ``https://<api id>.execute-api.<region>.amazonaws.com[.cn]``: the region is in the host.
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class TargetError(Exception):
    """The deployed stack cannot be reached as asked (no credentials, no such stack ...)."""


def execute_api_region(url: str) -> str | None:
    match = _EXECUTE_API_HOST.match(urlsplit(url).hostname or "")
    return match.group(1) if match else None


def session(profile: str | None, region: str | None) -> Any:
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as error:
        raise TargetError(f"{error}; see aws configure list-profiles") from None


def stack_url(cloudformation: Any, stack_name: str) -> str:
    """The stack's ``ApiUrl`` output (template.yaml's Outputs)."""
    from botocore.exceptions import ClientError, NoCredentialsError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except NoCredentialsError:
        raise TargetError(_NO_CREDENTIALS) from None
    except ClientError as error:
        message = error.response.get("Error", {}).get("Message", str(error))
        raise TargetError(f"cannot read stack {stack_name}: {message}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if "ApiUrl" not in outputs:
        raise TargetError(f"stack {stack_name} has no ApiUrl output (not this project's stack?)")
    return str(outputs["ApiUrl"])


_NO_CREDENTIALS = (
    "no AWS credentials found to sign requests to the deployed API "
    "(run aws configure, or set AWS_PROFILE / --profile)"
)


class SigV4(httpx.Auth):
    """Signs each request for API Gateway (``execute-api``) with botocore's SigV4 signer."""

    requires_request_body = True  # the payload hash is part of the signature

    def __init__(self, credentials: Any, region: str) -> None:
        if credentials is None:
            raise TargetError(_NO_CREDENTIALS)
        self.credentials, self.region = credentials, region

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        signed = AWSRequest(
            method=request.method,
            url=str(request.url),
            data=request.content,
            headers={"Host": request.url.netloc.decode(), **_content_type(request)},
        )
        SigV4Auth(self.credentials.get_frozen_credentials(), "execute-api", self.region).add_auth(
            signed
        )
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        yield request


def _content_type(request: httpx.Request) -> dict[str, str]:
    value = request.headers.get("content-type")
    return {"Content-Type": value} if value else {}
