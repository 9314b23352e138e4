"""What lives at an address of a classified map: region, section, nearest symbol.

Below both the live reader and snapshots, which give it their symbol tables:
`symbols(image)` returns an image's SymbolTable (read from the file, or saved).
"""

from __future__ import annotations

from ..model import Location, ProcessMap, Region, Space, SymbolsOf, space_of


def locate(
    pmap: ProcessMap, address: int, symbols: SymbolsOf | None = None, space: Space | None = None
) -> Location:
    """Where `address` falls in `pmap` (`space`: its split, when the caller has it)."""
    region = pmap.region_at(address)
    if region is None:
        below, above = pmap.neighbours(address)
        if space is None:
            space = space_of(pmap.regions, pmap.images)
        reason, bounds = _why_unmapped(address, below, above, space)
        return Location(address, None, below=below, above=above, unmapped=reason, bounds=bounds)
    image = pmap.image_at(address) if region.object else None
    if image is None:
        return Location(address, region)
    vaddr = address - image.bias
    found_section = image.layout.section_at(vaddr)
    section = found_section.name if found_section else None
    symbol = offset = None
    table = symbols(image) if symbols else None
    if table is not None:
        found = table.lookup(vaddr)
        # A symbol names the address only inside the section that holds it.
        if found and (
            found_section is None
            or found_section.addr <= found[0].value < found_section.addr + found_section.size
        ):
            symbol, offset = found[0].name, found[1]
    return Location(address, region, image, section, symbol, offset)


def _why_unmapped(
    address: int, below: Region | None, above: Region | None, space: Space
) -> tuple[str, tuple[int, int] | None]:
    """A key of model.UNMAPPED_REASONS, and the stretch of unmapped addresses around it.

    From the process's own split (space_of), never from its neighbours: above
    the stack of an x86-64 process lies the non-canonical hole, then the
    kernel's half from ffff800000000000, of which [vsyscall] is only the top.
    """
    if address >= space.top:
        return "beyond-32-bit", (space.top, 1 << 64)
    if space.kernel_start is not None:
        if address >= space.kernel_start:
            return "kernel", (space.kernel_start, space.top)
        if address >= space.user_end:
            return "non-canonical", (space.user_end, space.kernel_start)
    # A gap: from the region below (or 0) to the one above, or the top of user space.
    low = below.end if below is not None else 0
    high = above.start if above is not None else space.top
    if space.kernel_start is not None:
        high = min(high, space.user_end)
    if below is None and address < 1 << 16:
        return "null", (low, high)
    return "gap", (low, high)
