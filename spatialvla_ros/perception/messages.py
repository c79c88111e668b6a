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

"""Build an rclpy OR a rosbags message from plain values, with one function.

The builders in `conversions` return plain trees (dicts for nested messages, lists of dicts
for message sequences, numpy arrays for numeric arrays). `make_message(cls, values)` turns
such a tree into an instance of `cls`, which may be a generated rclpy class (e.g.
`sensor_msgs.msg.Image`) or a rosbags typestore class (`typestore.types[
'sensor_msgs/msg/Image']`). The two families differ in exactly the ways handled here:
rclpy wants array.array for sequences (assigning a list of a million ints is ~100x slower)
and numpy arrays for fixed-size arrays; rosbags wants numpy arrays for both and requires
every field in its constructor. No rclpy import: nested classes are resolved from `cls`.
"""

import array
import dataclasses
import importlib
import re
import sys

import numpy as np

# rosidl basic type -> (array.array typecode, numpy dtype)
_RCLPY_NUMERIC = {
    'boolean': (None, np.bool_), 'octet': ('B', np.uint8), 'char': ('B', np.uint8),
    'uint8': ('B', np.uint8), 'int8': ('b', np.int8), 'uint16': ('H', np.uint16),
    'int16': ('h', np.int16), 'uint32': ('I', np.uint32), 'int32': ('i', np.int32),
    'uint64': ('Q', np.uint64), 'int64': ('q', np.int64), 'float': ('f', np.float32),
    'double': ('d', np.float64),
}
_RCLPY_SEQUENCE = re.compile(r'^sequence<([^,>]+)(?:,\s*\d+)?>$')
_RCLPY_ARRAY = re.compile(r'^([^\[]+)\[(\d+)\]$')
_ROSBAGS_DTYPE = re.compile(r'np\.dtype\[np\.(\w+)\]')
_ROSBAGS_LIST = re.compile(r'^list\[(\w+)\]$')


def is_rclpy_class(msg_cls):
    return hasattr(msg_cls, 'get_fields_and_field_types')


def is_rosbags_class(msg_cls):
    return dataclasses.is_dataclass(msg_cls) and hasattr(msg_cls, '__msgtype__')


def make_message(msg_cls, values):
    """Instantiate `msg_cls` (rclpy or rosbags) from a tree of plain `values`.

    Fields not in `values` keep the rclpy default, or get zero / '' / empty / a default
    nested message for rosbags (fixed-size arrays must then be given explicitly).
    """
    if is_rclpy_class(msg_cls):
        return _make_rclpy(msg_cls, values)
    if is_rosbags_class(msg_cls):
        return _make_rosbags(msg_cls, values)
    raise TypeError(f'msg_cls: got {msg_cls!r}, expected an rclpy message class or a rosbags '
                    'typestore message class')


def _rclpy_class(type_name):
    # 'std_msgs/Header' -> std_msgs.msg.Header (the generated package is already installed).
    package, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def _make_rclpy(msg_cls, values):
    msg = msg_cls()
    types = msg_cls.get_fields_and_field_types()
    for name, value in values.items():
        if name not in types:
            raise TypeError(f'{msg_cls.__name__}.{name}: unknown field, expected one of '
                            + ', '.join(types))
        type_name = types[name]
        seq = _RCLPY_SEQUENCE.match(type_name)
        fixed = _RCLPY_ARRAY.match(type_name)
        base = (seq or fixed).group(1) if (seq or fixed) else type_name
        if isinstance(value, dict):
            value = _make_rclpy(_rclpy_class(base), value)
        elif seq and '/' in base:
            value = [v if not isinstance(v, dict) else _make_rclpy(_rclpy_class(base), v)
                     for v in value]
        elif seq and base in _RCLPY_NUMERIC and _RCLPY_NUMERIC[base][0] is not None:
            typecode, dtype = _RCLPY_NUMERIC[base]
            if not isinstance(value, array.array):
                packed = array.array(typecode)
                packed.frombytes(np.ascontiguousarray(value, dtype=dtype).reshape(-1)
                                 .view(np.uint8).data)
                value = packed  # one memcpy from numpy; no Python ints
        elif fixed and base in _RCLPY_NUMERIC:
            value = np.asarray(value, dtype=_RCLPY_NUMERIC[base][1]).reshape(-1)
        setattr(msg, name, value)
    return msg


def _rosbags_default(type_str, module):
    if type_str == 'int':
        return 0
    if type_str == 'float':
        return 0.0
    if type_str == 'bool':
        return False
    if type_str == 'str':
        return ''
    if type_str.startswith('list['):
        return []
    if type_str.startswith('np.ndarray'):
        return np.zeros(0, dtype=_rosbags_dtype(type_str))
    return _make_rosbags(getattr(module, type_str), {})


def _rosbags_dtype(type_str):
    match = _ROSBAGS_DTYPE.search(type_str)
    return np.dtype(match.group(1)) if match else np.dtype(np.uint8)


def _make_rosbags(msg_cls, values):
    module = sys.modules[msg_cls.__module__]
    # Constants (PointField.FLOAT32, ...) show up as ClassVar fields: they are not arguments.
    fields = {f.name: f.type for f in dataclasses.fields(msg_cls)
              if not f.name.startswith('__') and not str(f.type).startswith('ClassVar')}
    unknown = set(values) - set(fields)
    if unknown:
        raise TypeError(f'{msg_cls.__name__}.{sorted(unknown)[0]}: unknown field, expected one '
                        'of ' + ', '.join(fields))
    kwargs = {}
    for name, type_str in fields.items():
        if name not in values:
            kwargs[name] = _rosbags_default(type_str, module)
            continue
        value = values[name]
        nested = _ROSBAGS_LIST.match(type_str)
        if isinstance(value, dict):
            value = _make_rosbags(getattr(module, type_str), value)
        elif nested and hasattr(module, nested.group(1)):
            cls = getattr(module, nested.group(1))
            value = [v if not isinstance(v, dict) else _make_rosbags(cls, v) for v in value]
        elif type_str.startswith('np.ndarray'):
            value = np.ascontiguousarray(value, dtype=_rosbags_dtype(type_str)).reshape(-1)
        elif nested:
            value = list(value)
        kwargs[name] = value
    return msg_cls(**kwargs)


__all__ = ['is_rclpy_class', 'is_rosbags_class', 'make_message']
