"""Asset names and where an asset's objects live in the store: shared by the asset service, which writes them, and
by the services that read what a frame's URL points to (ingest checks references, metrics reads masks)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

from shoal.kit.errors import FieldViolation, InvalidArgument
from shoal.kit.names import DatasetName

NAME_RE: Final = re.compile(r"^projects/([a-z][a-z0-9-]{0,62})/datasets/([a-z][a-z0-9-]{0,62})/assets/([0-9a-f]{64})$")
# An asset reference inside a frame: `shoal://projects/…/assets/{sha}`, or any URL whose path holds the blob key
# (signed URLs of the local URL server and of S3 both do).
BLOB_KEY_RE: Final = re.compile(r"assets/([a-z][a-z0-9-]{0,62})/([a-z][a-z0-9-]{0,62})/blobs/([0-9a-f]{64})(?:$|\?)")


@dataclass(frozen=True)
class AssetName:
    project: str
    dataset: str
    sha256: str

    @property
    def dataset_name(self) -> DatasetName:
        return DatasetName(self.project, self.dataset)

    def __str__(self) -> str:
        return f"projects/{self.project}/datasets/{self.dataset}/assets/{self.sha256}"

    @property
    def prefix(self) -> str:
        return f"assets/{self.project}/{self.dataset}"

    @property
    def blob(self) -> str:
        return f"{self.prefix}/blobs/{self.sha256}"

    @property
    def preview(self) -> str:
        return f"{self.prefix}/previews/{self.sha256}.jpg"

    @property
    def record(self) -> str:
        return f"{self.prefix}/records/{self.sha256}.json"


def parse_asset(name: str, field: str = "name") -> AssetName:
    found = NAME_RE.fullmatch(name)
    if not found:
        raise InvalidArgument.of(
            [FieldViolation(field, f"{name!r} is not an asset name (projects/{{p}}/datasets/{{d}}/assets/{{sha256}})")],
            reason="INVALID_NAME",
        )
    return AssetName(*found.groups())


# A percent-escape of a character of `/blobs/`, in either case: the only way a URL can hide that part of a blob key
# from a scan of its bytes, since `urllib.parse.unquote` makes these characters from nothing else.
_HIDDEN_BLOB_CHARACTER: Final = re.compile(rb"%(?:2[fF]|6[2cCfF]|73)")


def may_reference_assets(serialized: bytes) -> bool:
    """Whether a serialized message can hold a URL that `referenced_asset` takes for a Shoal asset's. False rules out
    every URL in it by one scan of its bytes (strings are stored as they are), without walking its fields: such a URL
    starts with `shoal://` or holds `/blobs/` once unquoted, so it holds `/blobs/` as it is or a percent-escape of one
    of those characters. Any `%` alone is no sign: frame embeddings are raw float bytes, and nearly every batch with
    them holds one."""
    return (
        b"shoal://" in serialized or b"/blobs/" in serialized or _HIDDEN_BLOB_CHARACTER.search(serialized) is not None
    )


def referenced_asset(url: str) -> AssetName | None:
    """The Shoal asset a frame's URL points to, if it points to one."""
    if url.startswith("shoal://"):
        found = NAME_RE.fullmatch(url.removeprefix("shoal://"))
        return AssetName(*found.groups()) if found else None
    if url.startswith(("http://", "https://", "s3://")):
        found = BLOB_KEY_RE.search(urllib.parse.unquote(url))
        return AssetName(*found.groups()) if found else None
    return None
