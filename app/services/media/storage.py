"""Where archived media bytes live: a local directory (MEDIA_DIR) or any S3-compatible store
(boto3), behind one small interface. Keys are content-addressed (`ab/abcdef….jpg`, from the
sha256), so the same file sent twice is kept once; objects are private (S3: no ACL, served
through presigned URLs of hours, so a lazy client's link does not die under it)."""

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Protocol

from app.config import Settings

PRESIGNED_SECONDS = 6 * 3600


class MediaStore(Protocol):
    """The archive's storage."""

    name: str

    def spool(self) -> IO[bytes]:
        """A temporary file to download into (deleted when closed unless `put` took it)."""
        ...

    def put(self, key: str, spooled: IO[bytes], *, content_type: str) -> None:
        """Keep the spooled file's bytes under `key` (replacing none: same key, same bytes)."""
        ...

    def location(self, key: str, *, content_type: str) -> Path | str:
        """Where to serve it from: a local file, or a presigned URL."""
        ...

    def delete(self, key: str) -> None:
        """Forget the bytes under `key` (none there is fine)."""
        ...

    def problem(self) -> str | None:
        """Why the store cannot be used now (for /ready and `fab doctor`); None when it can."""
        ...


def storage_key(*, sha256: str, extension: str) -> str:
    return f"{sha256[:2]}/{sha256}.{extension}"


class LocalStore:
    """Files under MEDIA_DIR, readable by the service's user only."""

    name = "local"

    def __init__(self, directory: str) -> None:
        self.root = Path(directory).expanduser().resolve()
        self._spool_dir = self.root / ".incoming"

    def spool(self) -> IO[bytes]:
        # In the same file system as the store, so `put` is an atomic rename.
        self._spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return tempfile.NamedTemporaryFile(dir=self._spool_dir, delete=False)

    def put(self, key: str, spooled: IO[bytes], *, content_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        spooled.flush()
        os.chmod(spooled.name, 0o600)
        os.replace(spooled.name, target)

    def location(self, key: str, *, content_type: str) -> Path | str:
        return self._path(key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def problem(self) -> str | None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            return f"MEDIA_DIR {self.root} is not writable: {exc.strerror or exc}"
        return None

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError("a media key stays inside MEDIA_DIR")
        return path


class S3Store:
    """Objects in S3_BUCKET of any S3-compatible store (S3_ENDPOINT_URL for MinIO, R2...);
    credentials from the usual AWS variables."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        import boto3  # type: ignore[import-untyped]  # only S3 archives pay for importing it
        from botocore.config import Config  # type: ignore[import-untyped]

        assert settings.s3_bucket is not None  # Settings refuses s3 without a bucket
        self.bucket = settings.s3_bucket
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            config=Config(
                connect_timeout=3,
                read_timeout=30,
                retries={"max_attempts": 3},
                signature_version="s3v4",
            ),
        )

    def spool(self) -> IO[bytes]:
        return tempfile.NamedTemporaryFile(delete=False)

    def put(self, key: str, spooled: IO[bytes], *, content_type: str) -> None:
        spooled.flush()
        spooled.seek(0)
        try:
            # Private: no ACL given, so the bucket's (private by default) applies.
            self.client.upload_fileobj(
                spooled, self.bucket, key, ExtraArgs={"ContentType": content_type}
            )
        finally:
            Path(spooled.name).unlink(missing_ok=True)

    def location(self, key: str, *, content_type: str) -> Path | str:
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key, "ResponseContentType": content_type},
            ExpiresIn=PRESIGNED_SECONDS,
        )
        return url

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    def problem(self) -> str | None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:  # botocore's errors: unreachable, no bucket, no credentials
            return f"S3 bucket {self.bucket} is not usable: {type(exc).__name__}"
        return None


def build_store(settings: Settings) -> MediaStore | None:
    """The store MEDIA_ARCHIVE names; None when media is not archived (the default)."""
    if settings.media_archive == "local":
        return LocalStore(settings.media_dir)
    if settings.media_archive == "s3":
        return S3Store(settings)
    return None
