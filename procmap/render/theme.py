"""One colour per kind, the same in every view."""

KIND_STYLES = {
    "text": "red",
    "rodata": "magenta",
    "data": "green",
    "bss": "cyan",
    "heap": "yellow",
    "stack": "bright_blue",
    "mmap": "default",
    "kernel": "bright_black",
}

# The same hues as hex colours, for the SVG and HTML pictures: dark enough to read
# on white as text and borders, and mixed with white for the boxes' light tints.
KIND_COLOURS = {
    "text": "#c62828",  # red
    "rodata": "#8e24aa",  # magenta
    "data": "#2e7d32",  # green
    "bss": "#00838f",  # cyan
    "heap": "#b45309",  # amber
    "stack": "#1565c0",  # blue
    "mmap": "#546e7a",  # grey-blue
    "kernel": "#616161",  # grey
}


def kind_style(kind: str | None) -> str:
    return KIND_STYLES.get(kind or "", "default")
