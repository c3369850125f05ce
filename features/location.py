"""Where a store lives: a local path, or an fsspec URL that Zarr v3 opens (`s3://bucket/ava.zarr`,
`gs://...`, `memory://...`).

Credentials and endpoints come from the filesystem library's own configuration (for S3: botocore's
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`, `~/.aws/`, or fsspec's config
files), never from the command line or the store. Local paths stay `Path`s; URLs stay strings
(`Path` would fold their `//`).
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator, Union

from features.core.errors import IAAError

Location = Union[Path, str]
CREDENTIAL_HINT = ("credentials and endpoint come from the filesystem library's usual configuration (for S3: "
                   "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL or ~/.aws/; fsspec's config files)")


class LocationError(IAAError):
    """A store URL that cannot be reached (unknown scheme, missing library, credentials, bucket)."""


def is_url(path: Location) -> bool:
    """True for `scheme://...` other than `file://` (object storage and other fsspec filesystems)."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def location(path: Location, *, absolute: bool = False) -> Location:
    """The store location of a user's `--store`: a URL (no trailing slash) or a Path (absolute if asked)."""
    if is_url(path):
        return str(path).rstrip("/")
    text = str(path)[len("file://"):] if str(path).startswith("file://") else str(path)
    return Path(os.path.abspath(text)) if absolute else Path(text)


def join(loc: Location, *parts: str) -> Location:
    return "/".join([str(loc), *parts]) if is_url(loc) else Path(loc, *parts)


def filesystem(url: str):
    """(fsspec filesystem, path inside it) of a URL; a clear error when its library is missing."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        scheme = url.split("://", 1)[0]
        raise LocationError(f"cannot open {url}: {exc}. A {scheme}:// store needs its fsspec filesystem "
                            f"(s3fs for s3://, gcsfs for gs://) installed") from None


@contextlib.contextmanager
def reaching(loc: Location) -> Iterator[None]:
    """Turns a remote filesystem's failures (credentials, endpoint, permissions) into one clear line."""
    if not is_url(loc):
        yield
        return
    try:
        yield
    except (FileNotFoundError, IAAError):
        raise
    except (PermissionError, ConnectionError, OSError, RuntimeError) as exc:
        raise LocationError(f"cannot reach the store {loc}: {type(exc).__name__}: {exc}. Check that it exists and "
                            f"that you may read and write it; {CREDENTIAL_HINT}") from None
    except Exception as exc:  # botocore's NoCredentialsError, EndpointConnectionError, ClientError ...
        if type(exc).__module__.split(".")[0] not in ("botocore", "aiobotocore", "s3fs", "google", "gcsfs",
                                                      "aiohttp", "fsspec"):
            raise
        raise LocationError(f"cannot reach the store {loc}: {type(exc).__name__}: {exc}. {CREDENTIAL_HINT}") from None


def exists(loc: Location) -> bool:
    if not is_url(loc):
        return Path(loc).exists()
    fs, path = filesystem(str(loc))
    with reaching(loc):
        return bool(fs.exists(path))


def remove(loc: Location) -> None:
    """Deletes a store (a directory tree, a file or every object under a URL prefix); nothing if absent."""
    if is_url(loc):
        fs, path = filesystem(str(loc))
        with reaching(loc):
            if fs.exists(path):
                fs.rm(path, recursive=True)
        return
    p = Path(loc)
    if p.is_dir():
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


def require_bucket(loc: Location) -> None:
    """Refuses a URL whose bucket (top-level container) does not exist, before anything is written."""
    if not is_url(loc):
        return
    fs, path = filesystem(str(loc))
    bucket = path.split("/", 1)[0]
    with reaching(loc):
        found = fs.exists(bucket)
    if not found:
        raise LocationError(f"the bucket {bucket!r} of {loc} does not exist (or cannot be listed): create it "
                            f"first; {CREDENTIAL_HINT}")
