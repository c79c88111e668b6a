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


"""Convert `rosbags` messages into rclpy messages of the same type, generically by field name.

Any bag, whatever its distro or recorder, is replayed with the rclpy message classes of this
install: each rclpy field takes the bag message's field of the same name (fields the bag lacks
keep their defaults, fields rclpy lacks are ignored), so small definition differences between
distros do not break playback. The field plan of each type is built once. Numeric arrays go
through `array.array` / numpy in one copy: an image's `data` is ~1 ms at VGA, where assigning
bytes or a list costs 20-400x more. Every `std_msgs/Header` stamp can be shifted on the way
(`stamp_offset_ns`, zero stamps kept: they mean "now").
"""

import array
import importlib

import numpy as np

HEADER = 'std_msgs/Header'
# IDL primitive -> (array.array typecode, numpy dtype) for numeric sequences and arrays.
_NUMERIC = {
    'float': ('f', np.float32), 'double': ('d', np.float64), 'long double': ('d', np.float64),
    'int8': ('b', np.int8), 'uint8': ('B', np.uint8), 'int16': ('h', np.int16),
    'uint16': ('H', np.uint16), 'int32': ('i', np.int32), 'uint32': ('I', np.uint32),
    'int64': ('q', np.int64), 'uint64': ('Q', np.uint64), 'char': ('B', np.uint8),
}
_INTEGER = {'int8', 'uint8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'char'}
_FLOAT = {'float', 'double', 'long double'}


class ConversionError(TypeError):
    """A message type has no rclpy counterpart, or a field cannot be converted."""


def _normalise_type(msgtype):
    """'pkg/msg/Name' or 'pkg/Name' -> ('pkg', 'Name')."""
    parts = msgtype.split('/')
    if len(parts) == 3 and parts[1] == 'msg':
        return parts[0], parts[2]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise ConversionError(f'message type {msgtype!r}: expected pkg/msg/Name')


def rclpy_class(msgtype):
    """Return the rclpy class of `msgtype` ('sensor_msgs/msg/Image'); ConversionError if none."""
    package, name = _normalise_type(msgtype)
    try:
        return getattr(importlib.import_module(f'{package}.msg'), name)
    except (ImportError, AttributeError):
        raise ConversionError(f'message type {package}/msg/{name}: no rclpy type support is '
                              f'installed (cannot import {package}.msg.{name})') from None


def _split_type(text):
    """Split an rclpy field type string into (base, container, size).

    container: '' (single), 'seq' (sequence<T> or sequence<T, N>), 'array' (T[N]).
    """
    if text.startswith('sequence<') and text.endswith('>'):
        base = text[len('sequence<'):-1].split(',')[0].strip()
        return base, 'seq', None
    if text.endswith(']') and '[' in text:
        base, _, size = text[:-1].rpartition('[')
        return base, 'array', int(size)
    return text, '', None


def _is_string(base):
    return base in ('string', 'wstring') or base.startswith(('string<', 'wstring<'))


class MessageConverter:
    """Convert rosbags messages into rclpy messages, with per-type field plans cached.

    Args:
        stamp_offset_ns: added to every non-zero std_msgs/Header stamp (0: unchanged).
    """

    def __init__(self, stamp_offset_ns=0):
        self.stamp_offset_ns = int(stamp_offset_ns)
        self._plans = {}

    def convert(self, msg, cls):
        """Build an instance of rclpy message class `cls` from the rosbags message `msg`."""
        out = cls()
        for name, kind, arg in self._plan(cls):
            value = getattr(msg, name, None)
            if value is None:
                continue          # a field the bag's definition does not have: keep default
            try:
                setattr(out, name, self._value(kind, arg, value))
            except (TypeError, ValueError, AssertionError, OverflowError) as exc:
                raise ConversionError(f'{cls.__module__}.{cls.__name__}.{name}: cannot take '
                                      f'{type(value).__name__} from the bag: {exc}') from None
        return out

    def _plan(self, cls):
        plan = self._plans.get(cls)
        if plan is None:
            plan = [(name, *self._field_kind(text))
                    for name, text in cls.get_fields_and_field_types().items()]
            self._plans[cls] = plan
        return plan

    def _field_kind(self, text):
        base, container, size = _split_type(text)
        if '/' in base:
            sub = rclpy_class(base)
            if container:
                return 'msg_list', sub
            return ('header' if base == HEADER else 'msg'), sub
        if base == 'boolean':
            return ('bool_list', None) if container else ('bool', None)
        if base == 'octet':
            return ('octets', None) if container else ('octet', None)
        if _is_string(base):
            return ('str_list', None) if container else ('str', None)
        if base in _NUMERIC:
            code, dtype = _NUMERIC[base]
            if container == 'seq':
                return 'num_seq', (code, dtype)
            if container == 'array':
                return 'num_array', dtype
            return ('int', None) if base in _INTEGER else ('float', None)
        raise ConversionError(f'field type {text!r}: not supported by the converter')

    def _value(self, kind, arg, value):
        if kind == 'num_seq':
            code, dtype = arg
            return array.array(code, np.ascontiguousarray(value, dtype=dtype).tobytes())
        if kind == 'num_array':
            return np.asarray(value, dtype=arg)
        if kind == 'msg':
            return self.convert(value, arg)
        if kind == 'header':
            header = self.convert(value, arg)
            if self.stamp_offset_ns:
                stamp = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
                if stamp:
                    sec, nanosec = divmod(stamp + self.stamp_offset_ns, 1_000_000_000)
                    header.stamp.sec, header.stamp.nanosec = int(sec), int(nanosec)
            return header
        if kind == 'msg_list':
            return [self.convert(v, arg) for v in value]
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
            return bytes([int(value)]) if not isinstance(value, bytes) else value
        if kind == 'octets':
            return bytes(np.asarray(value, dtype=np.uint8).tobytes()) \
                if not isinstance(value, bytes) else value
        raise ConversionError(f'internal: unknown field kind {kind!r}')


__all__ = ['ConversionError', 'MessageConverter', 'rclpy_class']
