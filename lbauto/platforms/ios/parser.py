"""IOS running config -> owned objects (IPv4 static routes in mask notation)."""

from lbauto.platforms._cisco import parse_cisco
from lbauto.platforms._parsing import Found


def parse(text: str, f: Found) -> None:
    parse_cisco(text, f, mask_notation=True)
