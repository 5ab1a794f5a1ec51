"""A dataset's classes (`Classes`: its name and class names in label order, CIFAR-10 by default) and `--class`."""

from dataclasses import dataclass

from cifar_synth.errors import UserError

# The run trained on all classes' images that class runs can start from (`train --init-from shared`).
SHARED_START = "shared"
ALL_CLASSES = "all"
_RESERVED = (SHARED_START, ALL_CLASSES)  # words of --class, so no class may be called so
_UNSAFE_CHARACTERS = ("/", "\\", "\0")


@dataclass(frozen=True)
class Classes:
    """The classes of one dataset: `names` in label order (label i is `names[i]`), each also a run directory's name.

    Two datasets are the same to runs, exports and evaluations when their class names are (`same_as`)."""

    dataset: str  # what the card and messages call it: CIFAR-10, CIFAR-100, or a class-folder tree's folder name
    names: tuple[str, ...]

    @classmethod
    def checked(cls, dataset: str, names, where: str) -> "Classes":
        """`Classes` of `names`, or one `UserError` naming `where` when they cannot be run directories or `--class`
        values: fewer than two, a name no folder can have, a reserved word, two names alike but for case."""
        names = tuple(names)
        if len(names) < 2:
            raise UserError(f"{where}: a dataset needs at least two classes, found {len(names)} ({', '.join(names)})")
        for name in names:
            if (not name or name != name.strip() or name.startswith(".")
                    or any(character in name for character in _UNSAFE_CHARACTERS)):
                raise UserError(f"{where}: class name {name!r} cannot be a run directory's name (empty, surrounding "
                                "spaces, a leading dot, or a slash)")
            if name.casefold() in _RESERVED:
                raise UserError(f"{where}: class name {name!r} is reserved ({' and '.join(_RESERVED)} are words of "
                                "--class); rename that class")
        folded: dict[str, str] = {}
        for name in names:
            if (twin := folded.setdefault(name.casefold(), name)) != name:
                raise UserError(f"{where}: class names {twin!r} and {name!r} differ only by case (--class ignores "
                                "case, and so do some file systems); rename one")
        return cls(dataset, names)

    @classmethod
    def from_record(cls, record: dict, where: str) -> "Classes":
        """The classes a runs folder's or an export's record names (`to_record`)."""
        try:
            return cls.checked(str(record["dataset"]), [str(name) for name in record["class_names"]], where)
        except (KeyError, TypeError) as error:
            raise UserError(f"{where}: not a valid record of a dataset's classes ({error})") from None

    def to_record(self) -> dict:
        return {"dataset": self.dataset, "class_names": list(self.names)}

    def __len__(self) -> int:
        return len(self.names)

    def same_as(self, other: "Classes") -> bool:
        return self.names == other.names

    def label(self, name: str) -> int:
        return self.names.index(name)

    def parse(self, values: list[str], shared: bool = False) -> list[str]:
        """`--class` values (case-insensitive, repeatable, `all`) as canonical names in label order; with `shared`,
        `shared` (the shared start) is accepted too and comes first, since class runs may start from it."""
        wanted = {value.strip().casefold() for value in values}
        first = [SHARED_START] if shared and SHARED_START in wanted else []
        wanted -= {SHARED_START} if first else set()
        if ALL_CLASSES in wanted:
            return first + list(self.names)
        by_folded = {name.casefold(): name for name in self.names}
        unknown = sorted(wanted - set(by_folded))
        if unknown:
            raise UserError(
                f"unknown {self.dataset} class {', '.join(repr(n) for n in unknown)}; valid names: "
                f"{', '.join(self.names)}, or {ALL_CLASSES!r}{f', or {SHARED_START!r}' if shared else ''}")
        return first + [name for name in self.names if name.casefold() in wanted]


CIFAR10 = Classes("CIFAR-10", (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
))


def classes_of(record: dict | None, where: str) -> Classes:
    """The classes a record names; no record (runs and exports from before records) means CIFAR-10."""
    return CIFAR10 if record is None else Classes.from_record(record, where)
