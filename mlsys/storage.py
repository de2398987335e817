"""Object stores behind the model registry: a local directory or S3, chosen by URI.

Both give the registry the same four operations, including the two it needs to
be safe under concurrency: an atomic whole-object write and a compare-and-swap
write (``if_match`` an ETag, or ``if_absent``). Locally that is a temp file plus
``os.replace`` under an ``flock``; on S3 it is a conditional ``PutObject``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

from mlsys.errors import ConcurrentUpdateError, ConfigError, RegistryError, VersionNotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Blob:
    data: bytes
    etag: str


class ObjectNotFoundError(VersionNotFoundError):
    code = "not_found"


class ObjectStore(Protocol):
    """Minimal key/value object store used by the registry."""

    uri: str

    def read(self, key: str) -> Blob:
        """Return the object; raise :class:`ObjectNotFoundError` if absent."""
        ...

    def read_if_changed(self, key: str, etag: str | None) -> Blob | None:
        """Return the object unless its ETag still equals ``etag`` (then ``None``)."""
        ...

    def write(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write atomically and return the new ETag.

        ``if_match``: only if the current ETag equals it; ``if_absent``: only if
        there is no object. Either failing raises :class:`ConcurrentUpdateError`.
        """
        ...

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        ...


def _etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalStore:
    """A directory on local disk. Safe for concurrent writers on one machine."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise RegistryError(f"key escapes the registry root: {key!r}")
        return path

    def read(self, key: str) -> Blob:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"{key} not found in {self.uri}") from None
        except OSError as exc:
            raise RegistryError(f"cannot read {key} from {self.uri}: {exc.strerror}") from exc
        return Blob(data, _etag(data))

    def read_if_changed(self, key: str, etag: str | None) -> Blob | None:
        blob = self.read(key)
        return None if etag is not None and blob.etag == etag else blob

    @contextlib.contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        lock_path = path.with_name(f".{path.name}.lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conditional = if_match is not None or if_absent
            with self._locked(path) if conditional else contextlib.nullcontext():
                if conditional:
                    current = _etag(path.read_bytes()) if path.exists() else None
                    if if_absent and current is not None:
                        raise ConcurrentUpdateError(f"{key} already exists")
                    if if_match is not None and current != if_match:
                        raise ConcurrentUpdateError(f"{key} changed since it was read")
                fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
                try:
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(data)
                        handle.flush()
                        os.fsync(handle.fileno())
                    os.replace(tmp, path)
                except BaseException:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
                    raise
        except OSError as exc:
            raise RegistryError(f"cannot write {key} to {self.uri}: {exc.strerror}") from exc
        return _etag(data)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )


class S3Store:
    """``s3://bucket/prefix``. Uses S3 conditional writes for compare-and-swap."""

    def __init__(self, bucket: str, prefix: str = "", *, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3  # noqa: PLC0415 - boto3 costs ~100 ms to import; only S3 users pay

            self._client = boto3.client("s3")
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @staticmethod
    def _code(exc: Exception) -> str:
        response: dict[str, Any] = getattr(exc, "response", {}) or {}
        return str(response.get("Error", {}).get("Code", ""))

    def _get(self, key: str, **kwargs: Any) -> Blob | None:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kwargs)
            return Blob(response["Body"].read(), response["ETag"].strip('"'))
        except ClientError as exc:
            code = self._code(exc)
            if code in {"304", "NotModified"}:
                return None
            if code in {"NoSuchKey", "404"}:
                raise ObjectNotFoundError(f"{key} not found in {self.uri}") from None
            raise RegistryError(f"cannot read {key} from {self.uri}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise RegistryError(f"cannot read {key} from {self.uri}: {exc}") from exc

    def read(self, key: str) -> Blob:
        blob = self._get(key)
        assert blob is not None  # an unconditional GET is never "not modified"
        return blob

    def read_if_changed(self, key: str, etag: str | None) -> Blob | None:
        if etag is None:
            return self.read(key)
        return self._get(key, IfNoneMatch=f'"{etag}"')

    def write(
        self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs["IfMatch"] = f'"{if_match}"'
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        content_type = "application/json" if key.endswith(".json") else "application/octet-stream"
        try:
            response = self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                ContentType=content_type,
                **kwargs,
            )
        except ClientError as exc:
            code = self._code(exc)
            if code in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}:
                raise ConcurrentUpdateError(f"{key} changed since it was read") from None
            raise RegistryError(f"cannot write {key} to {self.uri}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise RegistryError(f"cannot write {key} to {self.uri}: {exc}") from exc
        return response["ETag"].strip('"')

    def list(self, prefix: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        keys: list[str] = []
        strip = len(self.prefix) + 1 if self.prefix else 0
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise RegistryError(f"cannot list {prefix} in {self.uri}: {exc}") from exc
        return sorted(keys)


def open_store(uri: str, *, s3_client: S3Client | None = None) -> ObjectStore:
    """Open the store a URI names: ``s3://bucket[/prefix]`` or a directory path."""
    if not uri:
        raise ConfigError("registry URI is empty")
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"registry URI {uri!r} has no bucket")
        return S3Store(parsed.netloc, parsed.path, client=s3_client)
    if parsed.scheme == "file":
        return LocalStore(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        raise ConfigError(f"registry URI {uri!r}: use a directory path or s3://bucket/prefix")
    return LocalStore(uri)


# --- whole files by URI (the input and output of `mlsys predict`) -----------------------


def split_s3_uri(uri: str) -> tuple[str, str] | None:
    """``(bucket, key)`` of an ``s3://bucket/key`` URI; ``None`` for anything else."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3":
        return None
    if not parsed.netloc or not parsed.path.strip("/"):
        raise ConfigError(f"{uri!r} names no object: use s3://bucket/key")
    return parsed.netloc, parsed.path.lstrip("/")


def _s3_client(client: S3Client | None) -> S3Client:
    if client is not None:
        return client
    import boto3  # noqa: PLC0415 - only S3 users pay for boto3

    return boto3.client("s3")


@contextlib.contextmanager
def local_copy(uri: str, *, s3_client: S3Client | None = None) -> Iterator[Path]:
    """A local path holding the file ``uri`` names: the path itself, or a temporary copy of
    an ``s3://`` object (streamed to disk, never held in memory; removed afterwards).
    Raises :class:`ObjectNotFoundError` when there is no such file or object."""
    location = split_s3_uri(uri)
    if location is None:
        path = Path(uri.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise ObjectNotFoundError(f"{uri}: no such file")
        yield path
        return
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    bucket, key = location
    with tempfile.TemporaryDirectory(prefix="mlsys-in-") as folder:
        path = Path(folder) / Path(key).name
        try:
            _s3_client(s3_client).download_file(bucket, key, str(path))
        except ClientError as exc:
            code = S3Store._code(exc)
            if code in {"404", "NoSuchKey", "NoSuchBucket"}:
                raise ObjectNotFoundError(f"{uri}: no such object") from None
            raise RegistryError(f"cannot read {uri}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise RegistryError(f"cannot read {uri}: {exc}") from exc
        yield path


@contextlib.contextmanager
def staged_output(uri: str, *, s3_client: S3Client | None = None) -> Iterator[Path]:
    """A local temporary path to write the file ``uri`` names; it becomes ``uri`` only if
    the block succeeds (renamed into place, or uploaded to S3 in parts), so a failed or
    interrupted write never leaves a partial file where a finished one is expected."""
    location = split_s3_uri(uri)
    if location is None:
        target = Path(uri.removeprefix("file://")).expanduser()
        if not target.parent.is_dir():
            raise ConfigError(f"{uri}: folder {str(target.parent)!r} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            os.close(fd)
        except OSError as exc:
            raise RegistryError(f"cannot write {uri}: {exc.strerror}") from None
        try:
            yield Path(tmp)
            try:
                os.replace(tmp, target)
            except OSError as exc:
                raise RegistryError(f"cannot write {uri}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return
    with tempfile.TemporaryDirectory(prefix="mlsys-out-") as folder:
        path = Path(folder) / Path(location[1]).name
        yield path
        _upload(path, uri, location, s3_client)


def _upload(path: Path, uri: str, location: tuple[str, str], client: S3Client | None) -> None:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        _s3_client(client).upload_file(str(path), *location)
    except (ClientError, BotoCoreError) as exc:
        raise RegistryError(f"cannot write {uri}: {exc}") from exc
