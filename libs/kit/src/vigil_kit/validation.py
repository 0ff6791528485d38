"""Checks every request gets before its handler sees it: enum fields must hold a value the enum defines.

Proto3 enums are open: a client may send any number, and the generated code keeps it. A handler that
maps such a number to a name (`Enum.Name(n)`) would fail with ValueError and answer INTERNAL; the
caller sent something the service cannot understand, which is INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from vigil_kit.errors import InvalidArgument

_ENUM = FieldDescriptor.TYPE_ENUM
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


_HOLDERS: dict[str, frozenset[str]] = {}


def _enum_holders(descriptor: Descriptor, visiting: frozenset[str] = frozenset()) -> frozenset[str]:
    """Names of the fields of a message type that can hold an enum value: enum fields, and message fields
    (maps included) whose type can, at any depth. Worked out once per type: most requests have none, and
    the check of those is a dict look-up. A type met again inside itself counts as able to (the safe side:
    a value is never missed, at worst a branch is walked for nothing)."""
    known = _HOLDERS.get(descriptor.full_name)
    if known is not None:
        return known
    inside = visiting | {descriptor.full_name}
    holders = set()
    for field in descriptor.fields:
        if field.type == _ENUM:
            holders.add(field.name)
        elif field.type == _MESSAGE:
            nested = field.message_type
            if nested.full_name in inside or _enum_holders(nested, inside):
                holders.add(field.name)
    _HOLDERS[descriptor.full_name] = found = frozenset(holders)
    return found


def unknown_enum_values(message: Message, prefix: str = "") -> list[tuple[str, int]]:
    """(field path, value) for every set enum field, at any depth, holding a number its enum lacks."""
    out: list[tuple[str, int]] = []
    holders = _enum_holders(message.DESCRIPTOR)
    if not holders:
        return out
    for field, value in message.ListFields():
        if field.name not in holders:
            continue
        path = f"{prefix}{field.name}"
        if field.type == _ENUM:
            known = field.enum_type.values_by_number
            values = value if field.is_repeated else [value]
            out.extend(
                (path if not field.is_repeated else f"{path}[{i}]", v)
                for i, v in enumerate(values)
                if v not in known
            )
        elif field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            for k, v in value.items():
                item = f"{path}[{k!r}]"
                if value_field.type == _MESSAGE:
                    out.extend(unknown_enum_values(v, f"{item}."))
                elif value_field.type == _ENUM and v not in value_field.enum_type.values_by_number:
                    out.append((item, v))
        elif field.is_repeated:
            for i, item in enumerate(value):
                out.extend(unknown_enum_values(item, f"{path}[{i}]."))
        else:
            out.extend(unknown_enum_values(value, f"{path}."))
    return out


def check_enums(message: object) -> None:
    """INVALID_ARGUMENT naming the first field (and listing all) whose enum value is not defined.

    Anything but a protobuf message (a raw-bytes generic handler's request) is left alone.
    """
    if not isinstance(message, Message):
        return
    bad = unknown_enum_values(message)
    if bad:
        (field, value), rest = bad[0], bad[1:]
        raise InvalidArgument(
            f"{field} is {value}, which is not a value of its enum",
            field=field,
            violations=[(f, f"{v} is not a value of its enum") for f, v in rest],
        )
