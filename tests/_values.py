"""What the value tests share: a value survives pickle, copy and deepcopy, as it was."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def _mutable_parts(value: Any) -> Iterator[Any]:
    """Every container and attrs value inside ``value``, ``value`` included."""
    yield value
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _mutable_parts(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _mutable_parts(item)
    elif attrs.has(type(value)):
        for a in attrs.fields(type(value)):
            yield from _mutable_parts(getattr(value, a.name))


def assert_plain_value(value: Any) -> None:
    """``value`` survives pickle (every protocol), ``copy.copy`` and ``copy.deepcopy``.

    Each copy is equal, of the same type, with the same hash when ``value`` has one;
    a deep copy shares no list, dict or read-only mapping with ``value``.
    """
    copies = [pickle.loads(pickle.dumps(value, protocol)) for protocol in PROTOCOLS]
    deep = copy.deepcopy(value)
    copies += [copy.copy(value), deep]
    for other in copies:
        assert type(other) is type(value)
        assert other == value
        assert value == other
    try:
        expected = hash(value)
    except TypeError:  # an event holding JSON (a dict) is not hashable, like the dict
        pass
    else:
        assert all(hash(other) == expected for other in copies)

    def containers(of: Any) -> set[int]:
        return {id(part) for part in _mutable_parts(of) if isinstance(part, list | Mapping)}

    assert not containers(value) & containers(deep)


def copies(value: Any) -> list[Any]:
    """``value`` through pickle (every protocol), ``copy.copy`` and ``copy.deepcopy``."""
    pickled = [pickle.loads(pickle.dumps(value, protocol)) for protocol in PROTOCOLS]
    return [*pickled, copy.copy(value), copy.deepcopy(value)]
