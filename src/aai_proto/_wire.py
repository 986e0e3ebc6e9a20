"""Parsing and serialising messages: JSON text <-> events and client messages.

Strategy: parsing a server message has a fast path and a reference path that
agree on every input (a differential Hypothesis test checks it).

* The reference is one strict ``cattrs`` converter with detailed validation, made
  by a factory (never the global one). Its hooks for ``int``, ``float``, ``str``
  and ``bool`` refuse to coerce: a string where an int belongs is an error, an int
  may stand for a float, a bool is never a number. It only runs when the fast path
  refused a message, to say where and what is wrong.
* The fast path decodes with the standard ``json`` module, then structures with
  functions generated per event class from its ``attrs`` fields: the same strict
  checks, written out as plain code (no hook dispatch), and instances built by
  setting the slots directly (the classes have no validators or converters, which
  the generator checks). With ``msgspec`` installed (``aai-proto[fast]``), a
  decoder that builds the events straight from the text runs first (see
  ``_accel``); whatever it does not accept takes the path above.

Every failure leaves as ``RemoteProtocolError``.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from typing import Any, Final, get_args, get_origin, get_type_hints

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ._errors import RemoteProtocolError
from ._events import (
    MESSAGE_TYPES,
    ServerError,
    ServerEvent,
    UnknownMessage,
)
from ._messages import ClientMessage, ForceEndpoint, KeepAlive, Terminate, UpdateConfiguration
from ._params import InvalidParameter

__all__ = [
    "dump_client_message",
    "dump_server_message",
    "make_converter",
    "parse_client_message",
    "parse_server_message",
]

_SERVER_TYPES: Final[dict[str, type[Any]]] = {cls.type: cls for cls in MESSAGE_TYPES}
_CLIENT_TYPES: Final[dict[str, type[Any]]] = {
    cls.type: cls for cls in (Terminate, ForceEndpoint, KeepAlive, UpdateConfiguration)
}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _strict_int(v: Any, _: Any) -> int:
    if type(v) is not int:
        raise ValueError(f"expected an integer, got {_shown(v)}")
    return v


def _strict_float(v: Any, _: Any) -> float:
    if type(v) is float:
        return v
    if type(v) is int:
        try:
            return float(v)
        except OverflowError:
            raise ValueError(f"number out of range, got {_shown(v)}") from None
    raise ValueError(f"expected a number, got {_shown(v)}")


def _strict_str(v: Any, _: Any) -> str:
    if type(v) is not str:
        raise ValueError(f"expected a string, got {_shown(v)}")
    return v


def _strict_bool(v: Any, _: Any) -> bool:
    if type(v) is not bool:
        raise ValueError(f"expected true or false, got {_shown(v)}")
    return v


def _is_homogeneous_tuple(t: Any) -> bool:
    args = get_args(t)
    return get_origin(t) is tuple and len(args) == 2 and args[1] is Ellipsis


def make_converter(*, detailed_validation: bool = False) -> cattrs.Converter:
    """Return a new strict converter for the protocol's messages.

    Primitives are never coerced; ``tuple[X, ...]`` fields take JSON arrays only;
    unknown keys are ignored; optional fields whose value is ``None`` are left out
    when unstructuring.
    """
    conv = cattrs.Converter(detailed_validation=detailed_validation, forbid_extra_keys=False)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(bool, _strict_bool)

    def tuple_hook(t: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        item = conv.get_structure_hook(get_args(t)[0])
        item_type = get_args(t)[0]

        def structure(v: Any, _: Any) -> tuple[Any, ...]:
            if type(v) is not list:
                raise ValueError(f"expected a list, got {_shown(v)}")
            return tuple([item(x, item_type) for x in v])

        return structure

    conv.register_structure_hook_factory(_is_homogeneous_tuple, tuple_hook)

    def record_hook(t: Any) -> Callable[[Any, Any], Any]:
        inner = conv.gen_structure_attrs_fromdict(t)

        def structure(v: Any, _: Any) -> Any:
            if type(v) is not dict:
                raise ValueError(f"expected a JSON object, got {_shown(v)}")
            return inner(v, t)

        return structure

    conv.register_structure_hook_factory(attrs.has, record_hook)

    def unstructure_hook(t: Any) -> Callable[[Any], dict[str, Any]]:
        omit = {
            a.name: override(omit_if_default=True) for a in attrs.fields(t) if a.default is None
        }
        return make_dict_unstructure_fn(t, conv, **omit)  # type: ignore[arg-type]

    conv.register_unstructure_hook_factory(attrs.has, unstructure_hook)
    return conv


_FAST: Final = make_converter()
_DETAILED: Final = make_converter(detailed_validation=True)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_object(text: str | bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError, bad UTF-8 in bytes, and huge integers.
        raise RemoteProtocolError(f"{what} is not valid JSON: {exc}") from None
    if type(data) is not dict:
        raise RemoteProtocolError(f"{what} must be a JSON object, got {type(data).__name__}")
    return data


def _format_exception(exc: BaseException, _: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    return str(exc)


def _problems(exc: cattrs.BaseValidationError) -> str:
    return "; ".join(cattrs.transform_error(exc, format_exception=_format_exception))


def _detailed_error(data: dict[str, Any], cls: type[Any], what: str) -> RemoteProtocolError:
    """The error for a message the fast path refused: what is wrong, and where."""
    try:
        _DETAILED.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        return RemoteProtocolError(f"malformed {what} message: {_problems(exc)}")
    raise AssertionError("the fast and the detailed structuring disagree")  # pragma: no cover


# -- the generated structuring functions ------------------------------------------------
#
# Strategy: for each event class, Python source that checks and reads every field in
# turn and builds the instance by setting its slots (what the attrs ``__init__`` does,
# without the keyword-argument call). Any problem raises ``_Refused`` (or ``KeyError``
# for a missing field); the caller then asks the detailed converter what is wrong.

_StructureFn = Callable[[Any], Any]


class _Refused(Exception):
    """A value the fast structuring does not take; the detailed converter says why."""


_PRIMITIVE_CHECKS: Final[dict[Any, str]] = {
    int: "if type({v}) is not int: raise _Refused",
    str: "if type({v}) is not str: raise _Refused",
    bool: "if type({v}) is not bool: raise _Refused",
    float: (
        "if type({v}) is not float:\n"
        "    if type({v}) is int: {v} = float({v})\n"
        "    else: raise _Refused"
    ),
}


def _plain_class(cls: type[Any]) -> bool:
    """Whether setting the slots builds the same instance as calling ``cls``."""
    names = {a.name for a in attrs.fields(cls)}
    return (
        "__slots__" in cls.__dict__
        and set(cls.__dict__["__slots__"]) <= names | {"__weakref__"}
        and not hasattr(cls, "__attrs_pre_init__")
        and not hasattr(cls, "__attrs_post_init__")
        and all(
            a.validator is None
            and a.converter is None
            and a.on_setattr is None
            and a.init
            and isinstance(cls.__dict__.get(a.name), types.MemberDescriptorType)
            for a in attrs.fields(cls)
        )
    )


class _Generator:
    """Generates (and caches) the structuring function of each attrs class."""

    def __init__(self) -> None:
        self._fns: dict[type[Any], _StructureFn] = {}

    def get(self, cls: type[Any]) -> _StructureFn:
        fn = self._fns.get(cls)
        if fn is None:
            fn = self._fns[cls] = self._generate(cls)
        return fn

    def _check(self, t: Any, v: str, env: dict[str, Any], lines: list[str], indent: str) -> None:
        """Append the lines that check (and convert) the value in variable ``v``."""
        args = get_args(t)
        if t is Any:
            return
        if t in _PRIMITIVE_CHECKS:
            lines.extend(indent + line for line in _PRIMITIVE_CHECKS[t].format(v=v).split("\n"))
        elif isinstance(t, type) and attrs.has(t):
            env[f"_s_{t.__name__}"] = self.get(t)
            lines.append(f"{indent}{v} = _s_{t.__name__}({v})")
        elif type(None) in args and len(args) == 2:
            inner = args[0] if args[1] is type(None) else args[1]
            lines.append(f"{indent}if {v} is not None:")
            self._check(inner, v, env, lines, indent + "    ")
        elif _is_homogeneous_tuple(t) and attrs.has(args[0]):
            # The hot loop (a Turn's words): a comprehension, one call per item.
            env[f"_s_{args[0].__name__}"] = self.get(args[0])
            lines.append(f"{indent}if type({v}) is not list: raise _Refused")
            lines.append(f"{indent}{v} = tuple([_s_{args[0].__name__}(x) for x in {v}])")
        elif _is_homogeneous_tuple(t):  # pragma: no cover - no event has one (yet)
            item = f"{v}_i"
            lines.append(f"{indent}if type({v}) is not list: raise _Refused")
            lines.append(f"{indent}{v}_l = []")
            lines.append(f"{indent}for {item} in {v}:")
            self._check(args[0], item, env, lines, indent + "    ")
            lines.append(f"{indent}    {v}_l.append({item})")
            lines.append(f"{indent}{v} = tuple({v}_l)")
        else:  # pragma: no cover - every field type of the events is handled above
            raise TypeError(f"no fast structuring for {t!r}")

    def _generate(self, cls: type[Any]) -> _StructureFn:
        hints = get_type_hints(cls)
        plain = _plain_class(cls)
        env: dict[str, Any] = {"_Refused": _Refused, "_cls": cls, "_new": object.__new__}
        lines = ["def structure(d):", "    if type(d) is not dict: raise _Refused"]
        names = []
        for i, a in enumerate(attrs.fields(cls)):
            v = f"v{i}"
            names.append((a.name, v))
            default = a.default
            if default is attrs.NOTHING:
                lines.append(f"    {v} = d[{a.name!r}]")
                self._check(hints[a.name], v, env, lines, "    ")
            elif default is None:
                lines.append(f"    {v} = d.get({a.name!r})")
                self._check(hints[a.name], v, env, lines, "    ")
            else:
                env[f"_d{i}"] = default
                lines.append(f"    if {a.name!r} in d:")
                lines.append(f"        {v} = d[{a.name!r}]")
                self._check(hints[a.name], v, env, lines, "        ")
                lines.append("    else:")
                lines.append(f"        {v} = _d{i}")
            if plain:  # pragma: no branch - the events are all plain
                env[f"_set{i}"] = cls.__dict__[a.name].__set__
        if plain:
            lines.append("    o = _new(_cls)")
            lines.extend(f"    _set{i}(o, {v})" for i, (_, v) in enumerate(names))
            lines.append("    return o")
        else:  # pragma: no cover - the events are all plain
            lines.append("    return _cls(" + ", ".join(f"{n}={v}" for n, v in names) + ")")
        source = "\n".join(lines) + "\n"
        exec(compile(source, f"<aai_proto structure {cls.__name__}>", "exec"), env)
        fn: _StructureFn = env["structure"]
        return fn


_GENERATOR: Final = _Generator()
_STRUCTURE: Final[dict[str, _StructureFn]] = {
    kind: _GENERATOR.get(cls) for kind, cls in _SERVER_TYPES.items()
}


def _message_type(data: dict[str, Any]) -> str:
    """The ``type`` of a server message; ``Error`` for the legacy ``{"error": ...}`` form."""
    if "type" not in data and "error" in data:
        return ServerError.type
    kind = data.get("type")
    if type(kind) is not str:
        raise RemoteProtocolError(f"server message has no string 'type': {_shown(kind)}")
    return kind


def _parse_pure(text: str | bytes) -> ServerEvent:
    """Parse with the standard ``json`` and the generated structuring functions."""
    data = _load_object(text, "server message")
    kind = _message_type(data)
    structure = _STRUCTURE.get(kind)
    if structure is None:
        return UnknownMessage(type=kind, data=data)
    try:
        event: ServerEvent = structure(data)
    except (_Refused, KeyError, OverflowError):
        raise _detailed_error(data, _SERVER_TYPES[kind], kind) from None
    return event


def _parse_reference(text: str | bytes) -> ServerEvent:
    """Parse with the standard ``json`` and the detailed ``cattrs`` converter alone.

    The slow, obviously right way; the tests check the fast paths against it.
    """
    data = _load_object(text, "server message")
    kind = _message_type(data)
    cls = _SERVER_TYPES.get(kind)
    if cls is None:
        return UnknownMessage(type=kind, data=data)
    try:
        event: ServerEvent = _DETAILED.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise RemoteProtocolError(f"malformed {kind} message: {_problems(exc)}") from None
    return event


_ACCELERATED: Callable[[str | bytes], ServerEvent | None] | None
try:
    from ._accel import parse_server_message as _ACCELERATED
except ImportError:  # pragma: no cover - depends on what is installed
    _ACCELERATED = None

BACKENDS: Final[dict[str, Callable[[str | bytes], ServerEvent]]] = {"json": _parse_pure}
"""Each way of parsing, by name; ``msgspec`` when it is installed. For tests and benchmarks."""


def parse_server_message(text: str | bytes) -> ServerEvent:
    """Parse one server text frame into its event.

    A message of an unknown ``type`` becomes :class:`UnknownMessage`; an object
    with no ``type`` but an ``error`` string is the legacy form of ``Error``.
    Raises :class:`RemoteProtocolError` for anything else that is not a valid
    message: bad JSON, not an object, a missing field, a value of the wrong type.
    """
    if _ACCELERATED is not None:  # pragma: no branch - depends on what is installed
        event = _ACCELERATED(text)
        if event is not None:
            return event
    return _parse_pure(text)


if _ACCELERATED is not None:  # pragma: no branch - depends on what is installed
    BACKENDS["msgspec"] = parse_server_message


def dump_server_message(event: ServerEvent) -> str:
    """Serialise a server event as the compact JSON text the server sends.

    Optional fields that are ``None`` are left out and ``type`` comes last, as the
    service writes it. ``parse_server_message(dump_server_message(e)) == e``.
    """
    if isinstance(event, UnknownMessage):
        return json.dumps(event.data, separators=(",", ":"))
    data = _FAST.unstructure(event)
    data["type"] = event.type
    return json.dumps(data, separators=(",", ":"))


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse one client text frame, as a server checks it.

    Raises :class:`RemoteProtocolError` for what the service answers with ``Error``
    3006: bad JSON, not an object, an unknown ``type``, an invalid setting.
    Unknown keys are ignored.
    """
    data = _load_object(text, "client message")
    kind = data.get("type")
    cls = _CLIENT_TYPES.get(kind) if type(kind) is str else None
    if cls is None:
        raise RemoteProtocolError(f"unknown client message type {_shown(kind)}")
    if cls is not UpdateConfiguration:
        message: ClientMessage = cls()
        return message
    fields = {k: v for k, v in data.items() if k != "type"}
    unknown = sorted(set(fields) - {a.name for a in attrs.fields(UpdateConfiguration)})
    for name in unknown:
        del fields[name]
    try:
        return UpdateConfiguration(**fields)
    except InvalidParameter as exc:
        raise RemoteProtocolError(f"invalid UpdateConfiguration: {exc}") from None


def dump_client_message(message: ClientMessage) -> str:
    """Serialise a client message as a compact JSON text frame, ``type`` first."""
    data: dict[str, Any] = {"type": message.type}
    if isinstance(message, UpdateConfiguration):
        data.update(message.fields())
    return json.dumps(data, separators=(",", ":"))
