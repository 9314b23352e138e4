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


def kind_style(kind: str | None) -> str:
    return KIND_STYLES.get(kind or "", "default")
