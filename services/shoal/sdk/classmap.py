"""Class maps: the classes of a project, with colours, categories and skeleton rigs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shoal import rigs
from shoal.sdk.errors import ValidationError
from shoal.v1 import common_pb2, project_pb2

RGB = tuple[int, int, int]

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
    >>> ClassMapEntry.coco_person(class_id=1)  # COCO's 17 keypoints, 19 edges and OKS sigmas

    Skeleton edges are `(from, to)` or `(from, to, (r, g, b))`; `keypoint_colors` gives one colour per keypoint.
    """

    name: str
    class_id: int
    color: tuple[int, int, int] | None = None
    category: str | None = None
    ignore_in_eval: bool = False
    keypoint_names: Sequence[str] | None = None
    skeleton: Sequence[tuple[str, str] | tuple[str, str, RGB]] | None = None
    keypoint_sigmas: Sequence[float] | None = None
    keypoint_colors: Sequence[RGB] | None = None

    @classmethod
    def coco_person(cls, class_id: int, name: str = "person", **kwargs: object) -> ClassMapEntry:
        """COCO's person rig: 17 keypoints, 19 edges, COCO's OKS sigmas; left points warm, right cool."""
        names = list(rigs.COCO_PERSON_KEYPOINTS)
        edges: list[tuple[str, str, RGB]] = []
        for a, b in rigs.COCO_PERSON_SKELETON:
            sa, sb = rigs.side_of(a), rigs.side_of(b)
            same_side = sa is not None and sb is not None and sa[0] == sb[0]
            color = rigs.side_color(a) if same_side else rigs.CENTER_COLOR
            edges.append((a, b, color))
        return cls(
            name=name,
            class_id=class_id,
            keypoint_names=names,
            skeleton=edges,
            keypoint_sigmas=[rigs.COCO_PERSON_SIGMAS[n] for n in names],
            keypoint_colors=[rigs.side_color(n) for n in names],
            **kwargs,  # type: ignore[arg-type]
        )

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
        for edge in self.skeleton or []:
            a, b = edge[0], edge[1]
            if a not in names or b not in names:
                raise ValidationError(
                    f"skeleton edge ({a!r}, {b!r}) names a keypoint not in keypoint_names", field="skeleton"
                )
            if len(edge) == 3 and not _is_rgb(edge[2]):
                raise ValidationError(f"edge ({a!r}, {b!r}) colour must be three values 0..255", field="skeleton")
        if self.keypoint_sigmas is not None and len(self.keypoint_sigmas) != len(names):
            raise ValidationError("give one sigma per keypoint", field="keypoint_sigmas")
        if self.keypoint_colors is not None and (
            len(self.keypoint_colors) != len(names) or not all(_is_rgb(c) for c in self.keypoint_colors)
        ):
            raise ValidationError("give one colour (three values 0..255) per keypoint", field="keypoint_colors")

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
                project_pb2.KeypointDefinition(name=n, sigma=s, color=_color(c))
                for n, s, c in zip(self.keypoint_names or [], sigmas, self._keypoint_colors(), strict=True)
            ],
            skeleton=[
                project_pb2.SkeletonEdge(
                    from_keypoint=e[0],
                    to_keypoint=e[1],
                    color=_color(e[2] if len(e) == 3 else rigs.CENTER_COLOR),
                )
                for e in self.skeleton or []
            ],
        )

    def _keypoint_colors(self) -> list[RGB]:
        if self.keypoint_colors is not None:
            return [tuple(c) for c in self.keypoint_colors]  # type: ignore[misc]
        return [rigs.side_color(n) for n in self.keypoint_names or []]


def _is_rgb(c: object) -> bool:
    return isinstance(c, tuple | list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)


def _color(c: RGB) -> common_pb2.Color:
    return common_pb2.Color(red=c[0], green=c[1], blue=c[2])


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
