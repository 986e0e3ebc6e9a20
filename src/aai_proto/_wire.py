"""Parsing and serialising messages: JSON text <-> events and client messages.

Strategy: one strict ``cattrs`` converter, made by a factory (never the global
one). Its hooks for ``int``, ``float``, ``str`` and ``bool`` refuse to coerce: a
string where an int belongs is an error, an int may stand for a float, a bool is
never a number. Parsing first runs a converter without detailed validation (fast);
only when that fails is the message run again through a detailed one, to say where
and what is wrong. Every failure leaves as ``RemoteProtocolError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_unstructure_fn, override

from ._errors import RemoteProtocolError
from ._events import (
    Begin,
    Heartbeat,
    LLMGatewayResponse,
    ServerError,
    ServerEvent,
    ServerWarning,
    Silence,
    SpeakerRevision,
    SpeechStarted,
    Termination,
    Turn,
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

_SERVER_TYPES: Final[dict[str, type[Any]]] = {
    cls.type: cls
    for cls in (
        Begin,
        Turn,
        SpeechStarted,
        Termination,
        ServerError,
        ServerWarning,
        Heartbeat,
        Silence,
        SpeakerRevision,
        LLMGatewayResponse,
    )
}
_CLIENT_TYPES: Final[dict[str, type[Any]]] = {
    cls.type: cls for cls in (Terminate, ForceEndpoint, KeepAlive, UpdateConfiguration)
}

_T = TypeVar("_T")


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
        return float(v)
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


def _structure(data: dict[str, Any], cls: type[_T], what: str) -> _T:
    try:
        return _FAST.structure(data, cls)
    except (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError):
        pass
    try:
        _DETAILED.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        problems = "; ".join(cattrs.transform_error(exc, format_exception=_format_exception))
        raise RemoteProtocolError(f"malformed {what} message: {problems}") from None
    raise AssertionError("the fast and the detailed converter disagree")  # pragma: no cover


def parse_server_message(text: str | bytes) -> ServerEvent:
    """Parse one server text frame into its event.

    A message of an unknown ``type`` becomes :class:`UnknownMessage`; an object
    with no ``type`` but an ``error`` string is the legacy form of ``Error``.
    Raises :class:`RemoteProtocolError` for anything else that is not a valid
    message: bad JSON, not an object, a missing field, a value of the wrong type.
    """
    data = _load_object(text, "server message")
    kind = data.get("type")
    if "type" not in data and "error" in data:
        kind = ServerError.type
    if type(kind) is not str:
        raise RemoteProtocolError(f"server message has no string 'type': {_shown(kind)}")
    cls = _SERVER_TYPES.get(kind)
    if cls is None:
        return UnknownMessage(type=kind, data=data)
    event: ServerEvent = _structure(data, cls, kind)
    return event


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
