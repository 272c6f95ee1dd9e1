"""Feature selections written as text: `0-99` (both ends included), `1,5,9`, or a mix (`0-9,42,100-199`)."""

from __future__ import annotations

from mistudio.errors import InvalidInputError


def _ranges(spec: str) -> list[tuple[int, int]]:
    """The parts of `spec` as inclusive `(first, last)` ranges (a single index is `(i, i)`).

    Raises:
        InvalidInputError: a part is not an index or a range, or the spec names nothing.
    """
    ranges: list[tuple[int, int]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        try:
            if "-" in part.lstrip("-"):
                start_text, stop_text = part.split("-", 1)
                start, stop = int(start_text), int(stop_text)
                if stop < start:
                    raise InvalidInputError(f"feature range {part!r} ends before it starts")
                ranges.append((start, stop))
            else:
                ranges.append((int(part), int(part)))
        except ValueError:
            raise InvalidInputError(f"feature selection {spec!r}: {part!r} is not an index or a range like 0-99; "
                                    "write e.g. --features 0-99 or --features 1,5,9") from None
    if not ranges:
        raise InvalidInputError(f"feature selection {spec!r} names no feature")
    return ranges


def single_range(spec: str) -> tuple[int, int] | None:
    """`(start, stop)` with `stop` excluded when `spec` is one range like `0-99` (→ `(0, 100)`), else None.

    Raises:
        InvalidInputError: as `parse_feature_spec`.
    """
    ranges = _ranges(spec)
    if len(ranges) == 1 and "-" in spec.strip().lstrip("-"):
        return ranges[0][0], ranges[0][1] + 1
    return None


def parse_feature_spec(spec: str, n_features: int) -> list[int]:
    """The sorted, distinct feature indices `spec` names.

    Raises:
        InvalidInputError: a part is not an index or a range, or an index is outside [0, n_features).
    """
    indices: set[int] = set()
    for start, stop in _ranges(spec):
        if start < 0 or stop >= n_features:
            bad = start if start < 0 else stop
            raise InvalidInputError(f"feature indices outside [0, {n_features}): [{bad}]")
        indices.update(range(start, stop + 1))
    return sorted(indices)
