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

"""Typed, frozen dataclass configs read from YAML: coercion, checks and errors, written once.

A leaf module (no project imports): every config class of the package derives from
`YamlConfig` and declares only its fields and its `validate`. Errors are one line that names
the file, the dotted key, the value found and what was expected.
"""

import dataclasses
import os
import typing
from typing import ClassVar
from typing import Literal

import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or inconsistent."""


def require(ok, key, value, expected):
    """Raise ConfigError("key 'key': got value, expected ...") unless `ok`."""
    if not ok:
        raise ConfigError(f"key '{key}': got {value!r}, expected {expected}")


def _type_name(tp):
    if typing.get_origin(tp) is Literal:
        return 'one of ' + ', '.join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, '__name__', str(tp))


def _convert(value, tp, default, key):
    """Check one YAML value against a dataclass field type; return the typed value."""
    if dataclasses.is_dataclass(tp):
        require(isinstance(value, dict), key, value, f'a mapping of {tp.__name__} keys')
        return build(tp, value, key)
    if typing.get_origin(tp) is Literal:
        require(value in typing.get_args(tp), key, value, _type_name(tp))
        return value
    if tp is bool:
        require(isinstance(value, bool), key, value, 'true or false')
        return value
    if tp is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, value,
                'an integer')
        return value
    if tp is float:
        require(isinstance(value, (int, float)) and not isinstance(value, bool), key, value,
                'a number')
        return float(value)
    if tp is str:
        require(isinstance(value, str), key, value, 'a string')
        return value
    if tp is tuple:
        require(isinstance(value, (list, tuple)), key, value, 'a list')
        if default and dataclasses.is_dataclass(default[0]):
            return tuple(_convert(v, type(default[0]), None, f'{key}[{i}]')
                         for i, v in enumerate(value))
        item_type = type(default[0]) if default else None
        out = []
        for i, v in enumerate(value):
            if item_type in (int, float) or (item_type is None and isinstance(v, (int, float))):
                out.append(_convert(v, float if item_type is None else item_type, None,
                                    f'{key}[{i}]'))
            elif item_type is not None:
                out.append(_convert(v, item_type, None, f'{key}[{i}]'))
            else:
                require(isinstance(v, str), f'{key}[{i}]', v, 'a string or a number')
                out.append(v)
        return tuple(out)
    raise TypeError(f'unsupported config type {tp} for {key}')


def build(cls, data, prefix='', ignore=()):
    """Build dataclass `cls` from a mapping; unknown keys (except `ignore`) are errors."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields) - set(ignore))
    if unknown:
        key = f'{prefix}.{unknown[0]}' if prefix else unknown[0]
        raise ConfigError(f"key '{key}': unknown key, expected one of: "
                          + ', '.join(sorted(set(fields) | set(ignore))))
    kwargs = {}
    for name, value in data.items():
        if name not in fields:
            continue
        f = fields[name]
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        key = f'{prefix}.{name}' if prefix else name
        kwargs[name] = _convert(value, hints[name], default, key)
    return cls(**kwargs)


def read_yaml_mapping(path):
    """Return the top-level mapping of a YAML file (safe_load); ConfigError names the file."""
    path = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f'{path}: config file not found') from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f'{path}: not UTF-8 YAML (byte {exc.start}: {exc.reason})') from None
    except yaml.YAMLError as exc:
        # PyYAML's message spans lines (context + caret); one line is enough to find it.
        detail = ' '.join(str(exc).split())
        raise ConfigError(f'{path}: not valid YAML: {detail}') from None
    if data is None:
        raise ConfigError(f'{path}: the file is empty, expected a mapping of config sections')
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: got a YAML {type(data).__name__}, expected a mapping of '
                          'config sections')
    return data


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


class YamlConfig:
    """Base of a frozen top-level config dataclass: load, validate once, save.

    A subclass lists in `sections_read_elsewhere` the top-level keys of the shared YAML file
    that other layers' configs own: they are skipped here (and checked by their owners).
    """

    sections_read_elsewhere: ClassVar[tuple] = ()

    def validate(self):
        """Check cross-field constraints; return self. Subclasses extend this."""
        return self

    @classmethod
    def from_dict(cls, data, source='<dict>'):
        """Build and validate; every error names `source`, the key and the expectation."""
        try:
            require(isinstance(data, dict), '<top level>', type(data).__name__,
                    'a mapping of config sections')
            return build(cls, data, ignore=cls.sections_read_elsewhere).validate()
        except ConfigError as exc:
            raise ConfigError(f'{source}: {exc}') from None

    @classmethod
    def from_yaml(cls, path):
        """Load a YAML config file (safe_load) and validate it once."""
        return cls.from_dict(read_yaml_mapping(path), source=os.fspath(path))

    def to_dict(self):
        return dataclasses.asdict(self)

    def save_yaml(self, path):
        """Write the config as YAML that `from_yaml` reads back equal."""
        with open(path, 'w', encoding='utf-8') as f:
            yaml.safe_dump(_plain(self.to_dict()), f, sort_keys=False)
