"""Kubernetes resource quantities ("250m", "2Gi", "1e3"): checked and compared before a
cluster sees them, so a typo is reported with its line instead of at ``kubectl apply``."""

from __future__ import annotations

import re
from decimal import Decimal

BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
DECIMAL = {"m": Decimal("0.001"), "": Decimal(1), "k": Decimal(10) ** 3}
DECIMAL |= {s: Decimal(10) ** (3 * (i + 2)) for i, s in enumerate("MGTPE")}

_QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?)$"
)


class QuantityError(ValueError):
    pass


def parse_quantity(text: str) -> Decimal:
    """The value of a non-negative quantity, in base units (cores or bytes)."""
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(
            f"{text!r} is not a Kubernetes quantity (a number with an optional suffix: "
            "m, k, M, G, Ki, Mi, Gi, ... or an exponent like 1e3)"
        )
    number = Decimal(match["number"])
    if match["exponent"]:
        return number * Decimal(10) ** int(match["exponent"][1:])
    suffix = match["suffix"] or ""
    if suffix in BINARY:
        return number * BINARY[suffix]
    return number * DECIMAL[suffix]


def cpu(text: str) -> str:
    """A CPU amount: cores or millicores ("1", "0.5", "250m")."""
    value = parse_quantity(text)
    if any(text.endswith(s) for s in BINARY):
        raise QuantityError(f"{text!r}: CPU is counted in cores or millicores (1, 0.5, 250m)")
    if value == 0:
        raise QuantityError(f"{text!r}: CPU must be more than zero")
    if value < Decimal("0.001"):
        raise QuantityError(f"{text!r}: the smallest CPU amount is 1m")
    return text


def memory(text: str) -> str:
    """A memory amount in bytes ("512Mi", "2Gi", "1G")."""
    value = parse_quantity(text)
    if text.endswith("m"):
        # "512m" is 0.512 bytes: always a slip for Mi
        raise QuantityError(f"{text!r} means {value} bytes; write {text[:-1]}Mi for mebibytes")
    if value < 1024 * 1024:
        raise QuantityError(f"{text!r} is under 1Mi: write a unit (Mi, Gi)")
    return text
