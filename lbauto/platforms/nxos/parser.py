"""NX-OS running config -> owned objects (``ip route P/len NH tag T PREF``)."""

from lbauto.platforms._cisco import parse_cisco
from lbauto.platforms._parsing import Found


def parse(text: str, f: Found) -> None:
    parse_cisco(text, f, mask_notation=False)
