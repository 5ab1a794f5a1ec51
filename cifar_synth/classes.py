"""CIFAR-10 class names, in label order, and parsing of `--class` options."""

from cifar_synth.errors import UserError

CLASS_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


def parse_class_names(names: list[str]) -> list[str]:
    """Turn `--class` values (case-insensitive, repeatable, `all`) into canonical names in label order."""
    wanted = {name.strip().lower() for name in names}
    if "all" in wanted:
        return list(CLASS_NAMES)
    unknown = sorted(wanted - set(CLASS_NAMES))
    if unknown:
        raise UserError(
            f"unknown class {', '.join(repr(n) for n in unknown)}; "
            f"valid names: {', '.join(CLASS_NAMES)}, or 'all'"
        )
    return [name for name in CLASS_NAMES if name in wanted]
