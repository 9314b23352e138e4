"""What lives at an address of a classified map: region, section, nearest symbol.

Below both the live reader and snapshots, which give it their symbol tables:
`symbols(image)` returns an image's SymbolTable (read from the file, or saved).
"""

from __future__ import annotations

from ..model import Location, ProcessMap, Region, SymbolsOf


def locate(pmap: ProcessMap, address: int, symbols: SymbolsOf | None = None) -> Location:
    """Where `address` falls in `pmap`."""
    region = pmap.region_at(address)
    if region is None:
        below, above = pmap.neighbours(address)
        return Location(
            address, None, below=below, above=above, unmapped=_why_unmapped(address, below, above)
        )
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


def _why_unmapped(address: int, below: Region | None, above: Region | None) -> str:
    """A key of model.UNMAPPED_REASONS."""
    if address >= 1 << 63:
        return "kernel"
    if (
        address >= 1 << 47
        and (above is None or above.start >= 1 << 63)
        and (below is None or below.end <= 1 << 47)
    ):
        return "non-canonical"
    if below is None and address < 1 << 16:
        return "null"
    return "gap"
