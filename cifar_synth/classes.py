"""CIFAR-10 class names, in label order, and parsing of `--class` options."""

from cifar_synth.errors import UserError

CLASS_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)
# The run trained on all ten classes' images that class runs can start from (`train --init-from shared`).
SHARED_START = "shared"


def parse_class_names(names: list[str], shared: bool = False) -> list[str]:
    """Turn `--class` values (case-insensitive, repeatable, `all`) into canonical names in label order; with
    `shared`, `shared` (the shared start) is accepted too and comes first, since class runs may start from it."""
    wanted = {name.strip().lower() for name in names}
    first = [SHARED_START] if shared and wanted & {SHARED_START} else []
    wanted -= set(first)
    if "all" in wanted:
        return first + list(CLASS_NAMES)
    unknown = sorted(wanted - set(CLASS_NAMES))
    if unknown:
        raise UserError(
            f"unknown class {', '.join(repr(n) for n in unknown)}; "
            f"valid names: {', '.join(CLASS_NAMES)}, or 'all'{f', or {SHARED_START!r}' if shared else ''}"
        )
    return first + [name for name in CLASS_NAMES if name in wanted]
