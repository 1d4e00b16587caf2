"""Class maps: the classes of a project, with colours, categories and skeleton rigs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shoal.sdk.errors import ValidationError
from shoal.v1 import common_pb2, project_pb2

# A repeating palette for classes given without a colour.
_PALETTE = [
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180),
]  # fmt: skip


@dataclass
class ClassMapEntry:
    """One class.

    >>> ClassMapEntry(name="person", class_id=1, keypoint_names=["nose", "left_eye"], skeleton=[("nose", "left_eye")])
    """

    name: str
    class_id: int
    color: tuple[int, int, int] | None = None
    category: str | None = None
    ignore_in_eval: bool = False
    keypoint_names: Sequence[str] | None = None
    skeleton: Sequence[tuple[str, str]] | None = None
    keypoint_sigmas: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValidationError("a class needs a name", field="name")
        if not isinstance(self.class_id, int) or self.class_id < 0:
            raise ValidationError(f"class_id must be a non-negative integer, got {self.class_id!r}", field="class_id")
        if self.color is not None and (len(self.color) != 3 or any(not 0 <= c <= 255 for c in self.color)):
            raise ValidationError(f"color must be three values 0..255, got {self.color!r}", field="color")
        names = list(self.keypoint_names or [])
        if len(set(names)) != len(names) or any(not n for n in names):
            raise ValidationError("keypoint names must be non-empty and unique", field="keypoint_names")
        for a, b in self.skeleton or []:
            if a not in names or b not in names:
                raise ValidationError(
                    f"skeleton edge ({a!r}, {b!r}) names a keypoint not in keypoint_names", field="skeleton"
                )
        if self.keypoint_sigmas is not None and len(self.keypoint_sigmas) != len(names):
            raise ValidationError("give one sigma per keypoint", field="keypoint_sigmas")

    def to_proto(self) -> project_pb2.ClassMapEntry:
        r, g, b = self.color if self.color is not None else _PALETTE[self.class_id % len(_PALETTE)]
        sigmas = list(self.keypoint_sigmas or [0.0] * len(self.keypoint_names or []))
        return project_pb2.ClassMapEntry(
            class_id=self.class_id,
            name=self.name,
            color=common_pb2.Color(red=r, green=g, blue=b),
            category=self.category or "",
            ignore_in_eval=self.ignore_in_eval,
            keypoints=[
                project_pb2.KeypointDefinition(name=n, sigma=s)
                for n, s in zip(self.keypoint_names or [], sigmas, strict=True)
            ],
            skeleton=[project_pb2.SkeletonEdge(from_keypoint=a, to_keypoint=b) for a, b in self.skeleton or []],
        )


@dataclass
class LabelClassMap:
    """A project's classes.

    >>> LabelClassMap.from_classnames(["car", "person", "bike"])
    """

    entries: list[ClassMapEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        entries, self.entries = self.entries, []
        for entry in entries:
            self.add_entry(entry)

    @classmethod
    def from_classnames(cls, classnames: Iterable[str]) -> LabelClassMap:
        """Classes numbered 0, 1, 2 … in the given order."""
        return cls([ClassMapEntry(name=name, class_id=i) for i, name in enumerate(classnames)])

    def add_entry(self, entry: ClassMapEntry) -> None:
        if any(e.class_id == entry.class_id for e in self.entries):
            raise ValidationError(f"class id {entry.class_id} is used twice", field="class_id")
        if any(e.name == entry.name for e in self.entries):
            raise ValidationError(f"class name {entry.name!r} is used twice", field="name")
        self.entries.append(entry)

    def to_proto(self) -> project_pb2.ClassMap:
        return project_pb2.ClassMap(entries=[e.to_proto() for e in self.entries])
