"""Errors the SDK raises."""

from __future__ import annotations


class ValidationError(ValueError):
    """Something added to a frame, dataset or class map is invalid. Names the frame, the label and the field."""

    def __init__(self, problem: str, *, frame_id: str = "", label_id: str = "", field: str = "") -> None:
        self.problem = problem
        self.frame_id = frame_id
        self.label_id = label_id
        self.field = field
        where = []
        if frame_id:
            where.append(f"frame {frame_id!r}")
        if label_id:
            where.append(f"label {label_id!r}")
        if field:
            where.append(f"field {field}")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


class UploadError(RuntimeError):
    """An upload could not be completed, even after retries."""


class OperationError(RuntimeError):
    """A long-running operation (an evaluation, a selection) ended in an error."""

    def __init__(self, name: str, code: int, reason: str, message: str) -> None:
        self.name = name
        self.code = code
        self.reason = reason
        super().__init__(f"{name} failed ({reason}): {message}")
