"""Resource names (`projects/{project}/datasets/{dataset}/…`): parsing with errors that name the request field."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from shoal.kit.errors import FieldViolation, InvalidArgument

ID_RE: Final = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
ID_RULE: Final = "lower-case letters, digits and hyphens, 1–63 characters, starting with a letter"


def check_id(value: str, field: str) -> str:
    """A resource id (project, dataset, inference set, checkpoint, segment, upload)."""
    if not ID_RE.fullmatch(value):
        raise InvalidArgument.of(
            [FieldViolation(field, f"{value!r} is not a valid id: {ID_RULE}")], reason="INVALID_ID"
        )
    return value


@dataclass(frozen=True)
class ProjectName:
    project: str

    def __str__(self) -> str:
        return f"projects/{self.project}"


@dataclass(frozen=True)
class DatasetName:
    project: str
    dataset: str

    @property
    def parent(self) -> ProjectName:
        return ProjectName(self.project)

    def __str__(self) -> str:
        return f"projects/{self.project}/datasets/{self.dataset}"


@dataclass(frozen=True)
class InferenceSetName:
    project: str
    dataset: str
    inference_set: str

    @property
    def dataset_name(self) -> DatasetName:
        return DatasetName(self.project, self.dataset)

    def __str__(self) -> str:
        return f"projects/{self.project}/datasets/{self.dataset}/inferenceSets/{self.inference_set}"


@dataclass(frozen=True)
class UploadName:
    """An upload into a dataset (`inference_set` empty) or an inference set."""

    project: str
    dataset: str
    inference_set: str
    upload: str

    @property
    def target(self) -> DatasetName | InferenceSetName:
        if self.inference_set:
            return InferenceSetName(self.project, self.dataset, self.inference_set)
        return DatasetName(self.project, self.dataset)

    def __str__(self) -> str:
        return f"{self.target}/uploads/{self.upload}"


def _split(value: str, field: str, pattern: str) -> list[str]:
    parts = value.split("/")
    shape = pattern.split("/")
    ok = len(parts) == len(shape) and all(
        (p == s) if not s.startswith("{") else bool(ID_RE.fullmatch(p)) for p, s in zip(parts, shape, strict=True)
    )
    if not ok:
        raise InvalidArgument.of(
            [FieldViolation(field, f"{value!r} is not a name of the form {pattern} (ids: {ID_RULE})")],
            reason="INVALID_NAME",
        )
    return [p for p, s in zip(parts, shape, strict=True) if s.startswith("{")]


def parse_project(value: str, field: str = "name") -> ProjectName:
    (project,) = _split(value, field, "projects/{project}")
    return ProjectName(project)


def parse_dataset(value: str, field: str = "name") -> DatasetName:
    project, dataset = _split(value, field, "projects/{project}/datasets/{dataset}")
    return DatasetName(project, dataset)


def parse_inference_set(value: str, field: str = "name") -> InferenceSetName:
    project, dataset, inference_set = _split(
        value, field, "projects/{project}/datasets/{dataset}/inferenceSets/{inference_set}"
    )
    return InferenceSetName(project, dataset, inference_set)


def parse_target(value: str, field: str = "target") -> DatasetName | InferenceSetName:
    """A dataset or an inference set."""
    if "/inferenceSets/" in value:
        return parse_inference_set(value, field)
    return parse_dataset(value, field)


def parse_upload(value: str, field: str = "name") -> UploadName:
    if "/inferenceSets/" in value:
        p, d, i, u = _split(
            value, field, "projects/{project}/datasets/{dataset}/inferenceSets/{inference_set}/uploads/{upload}"
        )
        return UploadName(p, d, i, u)
    p, d, u = _split(value, field, "projects/{project}/datasets/{dataset}/uploads/{upload}")
    return UploadName(p, d, "", u)
