"""Content-addressed source bundles: training/ as a SageMaker ``sourcedir.tar.gz`` and
model_handler/ as loose files under a prefix (the ``inference_code`` channel).

Keys carry a hash of the content, so a changed file gets a new key (running jobs keep the
code they started with) and an unchanged deploy re-uses the objects already there.
Everything here is deterministic: same files in, same bytes and keys out.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Hex digits of the SHA-256 in each key: 64 bits, no realistic collision between versions.
DIGEST_CHARS = 16
SOURCEDIR_NAME = "sourcedir.tar.gz"


@dataclass(frozen=True)
class PublishedSources:
    training_source_s3_uri: str  # s3://bucket/<prefix>training/<hash>/sourcedir.tar.gz
    inference_source_s3_uri: str  # s3://bucket/<prefix>inference/<hash>/ (a prefix)


def source_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted by relative path (the order of the bundle);
    caches (``__pycache__``, dot-folders such as ``.mypy_cache``) are no part of the source."""
    if not root.is_dir():
        raise FileNotFoundError(f"source folder {root} does not exist")
    files = sorted(
        (path for path in root.rglob("*") if path.is_file() and not _is_cache(path, root)),
        key=lambda path: path.relative_to(root).as_posix(),
    )
    if not files:
        raise ValueError(f"source folder {root} is empty")
    return files


def _is_cache(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return any(part == "__pycache__" or part.startswith(".") for part in parts)


def sourcedir_tarball(root: Path) -> bytes:
    """``root``'s files as a reproducible tar.gz with the files at the archive root, which is
    how SageMaker unpacks ``sagemaker_submit_directory`` into /opt/ml/code."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in source_files(root):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size = len(data)
            # Fixed metadata: the bytes (and so the key) depend on the content only.
            info.mtime = 0
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def tree_digest(root: Path) -> str:
    """SHA-256 over each file's relative path and content."""
    digest = hashlib.sha256()
    for path in source_files(root):
        name = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name)
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether ``key`` is in the bucket, asked with ListObjectsV2 (``Prefix=key``), not
    HeadObject: S3 answers HeadObject on a missing key with 404 only to a caller holding
    s3:ListBucket on the whole bucket, otherwise 403, and the template grants ListBucket
    only for ``s3:prefix`` = code/*, a condition key that list requests alone carry."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    return any(item.get("Key") == key for item in listed.get("Contents", []))


def _put_once(s3: Any, bucket: str, key: str, body: bytes) -> None:
    # An existing key holds the same content by construction: skip it (no new object version).
    if not _exists(s3, bucket, key):
        s3.put_object(Bucket=bucket, Key=key, Body=body)


def publish_training_source(s3: Any, bucket: str, prefix: str, root: Path) -> str:
    tarball = sourcedir_tarball(root)
    digest = hashlib.sha256(tarball).hexdigest()[:DIGEST_CHARS]
    key = f"{prefix}training/{digest}/{SOURCEDIR_NAME}"
    _put_once(s3, bucket, key, tarball)
    return f"s3://{bucket}/{key}"


def publish_inference_source(s3: Any, bucket: str, prefix: str, root: Path) -> str:
    base = f"{prefix}inference/{tree_digest(root)[:DIGEST_CHARS]}/"
    for path in source_files(root):
        _put_once(s3, bucket, base + path.relative_to(root).as_posix(), path.read_bytes())
    return f"s3://{bucket}/{base}"


def normalise_prefix(prefix: str) -> str:
    """``code`` / ``/code/`` -> ``code/``; empty stays empty (the bucket root)."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


def publish(s3: Any, bucket: str, prefix: str, payload_root: Path) -> PublishedSources:
    """Upload both bundles from ``payload_root`` (holding training/ and model_handler/)."""
    if not bucket:
        raise ValueError("Bucket is required")
    prefix = normalise_prefix(prefix)
    return PublishedSources(
        training_source_s3_uri=publish_training_source(
            s3, bucket, prefix, payload_root / "training"
        ),
        inference_source_s3_uri=publish_inference_source(
            s3, bucket, prefix, payload_root / "model_handler"
        ),
    )
