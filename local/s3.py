"""A folder in place of S3: ``s3://bucket/key`` is ``<root>/bucket/key``.

URIs stay ``s3://`` everywhere, so requests still pass botocore's validation and the
orchestration builds the same URIs it builds in the cloud.
"""

from __future__ import annotations

import tarfile
from pathlib import Path


class LocalS3:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, uri: str) -> Path:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an s3:// URI: {uri!r}")
        bucket_and_key = uri[len("s3://") :].strip("/")
        if not bucket_and_key or ".." in bucket_and_key.split("/"):
            raise ValueError(f"bad s3 URI: {uri!r}")
        return self.root / bucket_and_key

    def write(self, uri: str, body: bytes) -> Path:
        target = self.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        return target

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: object) -> dict:
        """S3's PutObject in botocore's call shape, for the code that writes through an S3
        client (the registry's statistics file); other parameters (ContentType) are ignored."""
        self.write(f"s3://{Bucket}/{Key}", Body)
        return {}

    def list_objects_v2(self, Bucket: str, Prefix: str = "", MaxKeys: int = 1000) -> dict:
        """S3's ListObjectsV2 (keys under ``Prefix``, sorted, at most ``MaxKeys``) in the shape
        botocore returns, for the code that asks S3 whether a prefix is empty."""
        bucket = self.root / Bucket
        keys = sorted(
            path.relative_to(bucket).as_posix()
            for path in (bucket.rglob("*") if bucket.is_dir() else [])
            if path.is_file()
        )
        contents = [{"Key": key} for key in keys if key.startswith(Prefix)][:MaxKeys]
        return {"Name": Bucket, "Prefix": Prefix, "KeyCount": len(contents), "Contents": contents}

    def put_tarball(self, source_dir: Path, uri: str) -> Path:
        """Write ``source_dir``'s contents as a ``.tar.gz`` object (SageMaker's artifact form)."""
        target = self.path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(target, "w:gz") as tar:
            for item in sorted(Path(source_dir).iterdir()):
                tar.add(item, arcname=item.name)
        return target

    def extract(self, uri: str, dest: Path) -> Path:
        """Unpack a ``.tar.gz`` object into ``dest`` (refusing paths that escape it)."""
        dest.mkdir(parents=True, exist_ok=True)
        with tarfile.open(self.path(uri), "r:gz") as tar:
            tar.extractall(dest, filter="data")
        return dest
