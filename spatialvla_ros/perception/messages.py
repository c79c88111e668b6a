# Copyright 2026 spatialvla_ros authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""The one walker over rosidl message types: build an rclpy or a rosbags message by field name.

`make_message(cls, source)` fills an instance of `cls`, a generated rclpy class (e.g.
`sensor_msgs.msg.Image`) or a rosbags typestore class (`typestore.types['sensor_msgs/msg/
Image']`), from `source`, which is either
- a tree of plain values (dicts for nested messages, lists of dicts for message sequences,
  numpy arrays for numeric arrays), as the builders in `conversions` return them: a key that is
  not a field of `cls` is an error; or
- a message of the other family (a rosbags message read from a bag, for instance): each field
  of `cls` takes the source's field of the same name, fields the source lacks keep their
  defaults and fields `cls` lacks are ignored, so definitions that differ slightly between
  distros still convert.
The two families differ in exactly the ways handled here: rclpy wants array.array for numeric
sequences (assigning a list of a million ints is ~100x slower; one memcpy from numpy here) and
numpy arrays for fixed-size arrays; rosbags wants numpy arrays for both and requires every field
in its constructor. The field plan of each class is built once. No rclpy import: nested classes
are resolved from `cls` (rosbags) or from the installed `<package>.msg` modules (rclpy).
"""

import array
import dataclasses
import importlib
import sys
from typing import NamedTuple

import numpy as np

from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.core_types import stamp_to_ns

HEADER_TYPES = ('std_msgs/Header', 'std_msgs/msg/Header')
# IDL primitive -> (array.array typecode, numpy dtype) for numeric sequences and arrays.
_NUMERIC = {
    'float': ('f', np.float32), 'double': ('d', np.float64), 'long double': ('d', np.float64),
    'int8': ('b', np.int8), 'uint8': ('B', np.uint8), 'int16': ('h', np.int16),
    'uint16': ('H', np.uint16), 'int32': ('i', np.int32), 'uint32': ('I', np.uint32),
    'int64': ('q', np.int64), 'uint64': ('Q', np.uint64), 'char': ('B', np.uint8),
}
_FLOAT = {'float', 'double', 'long double'}
# rosbags annotation of a scalar -> field kind.
_ROSBAGS_SCALAR = {'int': 'int', 'float': 'float', 'bool': 'bool', 'str': 'str'}


class ConversionError(TypeError):
    """A message type has no rclpy counterpart, or a field cannot take the value given."""


class Field(NamedTuple):
    """One field of a message class: its name, how to fill it, and the kind's argument.

    kind: 'msg' / 'header' / 'msg_list' (arg: the nested class), 'num_seq' (arg: (typecode,
    dtype)), 'num_array' (arg: dtype), 'int', 'float', 'bool', 'str', 'str_list', 'bool_list',
    'octet', 'octets'.
    """

    name: str
    kind: str
    arg: object = None


def is_rclpy_class(msg_cls):
    return hasattr(msg_cls, 'get_fields_and_field_types')


def is_rosbags_class(msg_cls):
    return dataclasses.is_dataclass(msg_cls) and hasattr(msg_cls, '__msgtype__')


def _split_msgtype(msgtype):
    """'pkg/msg/Name' or 'pkg/Name' -> ('pkg', 'Name')."""
    parts = msgtype.split('/')
    if len(parts) == 3 and parts[1] == 'msg':
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ConversionError(f'message type {msgtype!r}: expected pkg/msg/Name')


def rclpy_class(msgtype):
    """Return the rclpy class of `msgtype` ('sensor_msgs/msg/Image'); ConversionError if none."""
    package, name = _split_msgtype(msgtype)
    try:
        return getattr(importlib.import_module(f'{package}.msg'), name)
    except (ImportError, AttributeError):
        raise ConversionError(f'message type {package}/msg/{name}: no rclpy type support is '
                              f'installed (cannot import {package}.msg.{name})') from None


def _split_rclpy_type(text):
    """Split an rclpy field type string into (base, container): '' / 'seq' / 'array'."""
    if text.startswith('sequence<') and text.endswith('>'):
        return text[len('sequence<'):-1].split(',')[0].strip(), 'seq'
    if text.endswith(']') and '[' in text:
        return text[:-1].rpartition('[')[0], 'array'
    return text, ''


def _rclpy_field(name, text):
    base, container = _split_rclpy_type(text)
    if '/' in base:
        sub = rclpy_class(base)
        if container:
            return Field(name, 'msg_list', sub)
        return Field(name, 'header' if base in HEADER_TYPES else 'msg', sub)
    if base == 'boolean':
        return Field(name, 'bool_list' if container else 'bool')
    if base == 'octet':
        return Field(name, 'octets' if container else 'octet')
    if base in ('string', 'wstring') or base.startswith(('string<', 'wstring<')):
        return Field(name, 'str_list' if container else 'str')
    if base in _NUMERIC:
        if container == 'seq':
            return Field(name, 'num_seq', _NUMERIC[base])
        if container == 'array':
            return Field(name, 'num_array', _NUMERIC[base][1])
        return Field(name, 'float' if base in _FLOAT else 'int')
    raise ConversionError(f'field {name!r} of type {text!r}: not supported by the converter')


def _rosbags_field(name, text, module):
    if text in _ROSBAGS_SCALAR:
        return Field(name, _ROSBAGS_SCALAR[text])
    if text.startswith('np.ndarray'):
        dtype = text.rpartition('np.dtype[np.')[2].split(']')[0] or 'uint8'
        return Field(name, 'num_array', np.dtype(dtype))
    if text.startswith('list[') and text.endswith(']'):
        inner = text[len('list['):-1]
        if inner == 'str':
            return Field(name, 'str_list')
        if inner == 'bool':
            return Field(name, 'bool_list')
        if hasattr(module, inner):
            return Field(name, 'msg_list', getattr(module, inner))
    if hasattr(module, text):
        sub = getattr(module, text)
        return Field(name, 'header' if sub.__msgtype__ in HEADER_TYPES else 'msg', sub)
    raise ConversionError(f'field {name!r} of type {text!r}: not supported by the converter')


_PLANS = {}


def field_plan(msg_cls):
    """Return the fields of an rclpy or rosbags message class as `Field`s (cached per class)."""
    plan = _PLANS.get(msg_cls)
    if plan is not None:
        return plan
    if is_rclpy_class(msg_cls):
        plan = tuple(_rclpy_field(name, text)
                     for name, text in msg_cls.get_fields_and_field_types().items())
    elif is_rosbags_class(msg_cls):
        module = sys.modules[msg_cls.__module__]
        # Constants (PointField.FLOAT32, ...) show up as ClassVar fields: they are not fields.
        plan = tuple(_rosbags_field(f.name, str(f.type), module)
                     for f in dataclasses.fields(msg_cls)
                     if not f.name.startswith('__') and not str(f.type).startswith('ClassVar'))
    else:
        raise TypeError(f'msg_cls: got {msg_cls!r}, expected an rclpy message class or a '
                        'rosbags typestore message class')
    _PLANS[msg_cls] = plan
    return plan


def make_message(msg_cls, source, stamp_offset_ns=0):
    """Build an instance of `msg_cls` (rclpy or rosbags) from `source`, by field name.

    Args:
        msg_cls: the class to build.
        source: a dict of plain values (unknown keys are an error; missing fields get the
            class's default, or zero / '' / empty / a default nested message for rosbags,
            where fixed-size arrays must then be given explicitly), or a message object of
            either family (each field of `msg_cls` takes the source's field of the same name).
        stamp_offset_ns: added to every non-zero std_msgs/Header stamp on the way (zero stamps
            mean "now" and stay zero).

    Raises:
        ConversionError (a TypeError) naming the class and field that cannot be filled.
    """
    plan = field_plan(msg_cls)
    if isinstance(source, dict):
        unknown = set(source) - {f.name for f in plan}
        if unknown:
            raise ConversionError(f'{msg_cls.__name__}.{sorted(unknown)[0]}: unknown field, '
                                  'expected one of ' + ', '.join(f.name for f in plan))
        get = source.get
    else:
        def get(name):
            return getattr(source, name, None)
    rclpy_family = is_rclpy_class(msg_cls)
    values = {}
    for fld in plan:
        value = get(fld.name)
        if value is None:
            if not rclpy_family:
                values[fld.name] = _rosbags_default(fld)
            continue      # rclpy: keep the generated default
        try:
            values[fld.name] = _coerce(fld, value, rclpy_family, stamp_offset_ns)
        except ConversionError:
            raise
        except (TypeError, ValueError, AssertionError, OverflowError) as exc:
            raise ConversionError(f'{msg_cls.__module__}.{msg_cls.__name__}.{fld.name}: cannot '
                                  f'take {type(value).__name__}: {exc}') from None
    if not rclpy_family:
        return msg_cls(**values)
    msg = msg_cls()
    for name, value in values.items():
        try:
            setattr(msg, name, value)
        except (TypeError, ValueError, AssertionError, OverflowError) as exc:
            raise ConversionError(f'{msg_cls.__module__}.{msg_cls.__name__}.{name}: cannot '
                                  f'take {type(value).__name__}: {exc}') from None
    return msg


def _coerce(fld, value, rclpy_family, stamp_offset_ns):
    kind, arg = fld.kind, fld.arg
    if kind in ('msg', 'header'):
        if isinstance(value, arg) and not (kind == 'header' and stamp_offset_ns):
            return value
        out = make_message(arg, value, stamp_offset_ns)
        if kind == 'header' and stamp_offset_ns:
            stamp = stamp_to_ns(out.stamp)
            if stamp:
                out.stamp.sec, out.stamp.nanosec = ns_to_stamp(stamp + stamp_offset_ns)
        return out
    if kind == 'msg_list':
        return [v if isinstance(v, arg) else make_message(arg, v, stamp_offset_ns)
                for v in value]
    if kind == 'num_seq':
        code, dtype = arg
        if not rclpy_family:
            return np.ascontiguousarray(value, dtype=dtype).reshape(-1)
        if isinstance(value, array.array) and value.typecode == code:
            return value
        packed = array.array(code)
        packed.frombytes(np.ascontiguousarray(value, dtype=dtype).reshape(-1)
                         .view(np.uint8).data)
        return packed     # one memcpy from numpy; no Python ints
    if kind == 'num_array':
        return np.ascontiguousarray(value, dtype=arg).reshape(-1)
    if kind == 'int':
        return int(value)
    if kind == 'float':
        return float(value)
    if kind == 'bool':
        return bool(value)
    if kind == 'str':
        return str(value)
    if kind == 'str_list':
        return [str(v) for v in value]
    if kind == 'bool_list':
        return [bool(v) for v in value]
    if kind == 'octet':
        return value if isinstance(value, bytes) else bytes([int(value)])
    if kind == 'octets':
        return value if isinstance(value, bytes) else np.asarray(value, np.uint8).tobytes()
    raise ConversionError(f'internal: unknown field kind {kind!r}')


def _rosbags_default(fld):
    if fld.kind in ('msg', 'header'):
        return make_message(fld.arg, {})
    if fld.kind == 'num_array':
        return np.zeros(0, dtype=fld.arg)
    return {'int': 0, 'float': 0.0, 'bool': False, 'str': ''}.get(fld.kind, [])


__all__ = ['ConversionError', 'Field', 'field_plan', 'is_rclpy_class', 'is_rosbags_class',
           'make_message', 'rclpy_class']
