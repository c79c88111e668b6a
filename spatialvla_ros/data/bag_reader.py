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

"""Read rosbag2 directories (mcap or sqlite3) with `rosbags`, without a ROS install.

Reading is two-pass so that a long bag of camera images never sits in memory whole: `stamps()`
walks the bag once and returns each message's header stamp (read straight from the CDR bytes
for header-led types, no image is deserialised), then `fetch()` deserialises only the messages
the synchroniser kept, in bag order. Messages are addressed by (topic, index within the topic).
"""

import os
import struct

from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_msg
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

from spatialvla_ros.core_types import Stamp
from spatialvla_ros.core_types import stamp_to_ns

_HEADER = 'std_msgs/msg/Header'
_TYPESTORE = None


class BagError(ValueError):
    """A bag cannot be read, or lacks a topic the configuration asks for."""


def default_typestore():
    """Return the shared ROS 2 Kilted type store (read-only after setup)."""
    global _TYPESTORE
    if _TYPESTORE is None:
        _TYPESTORE = get_typestore(Stores.ROS2_KILTED)
    return _TYPESTORE


def is_bag_directory(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, 'metadata.yaml'))


def find_bags(paths):
    """Expand directories: each path is a bag, or a folder whose sub-folders are bags (sorted)."""
    out = []
    for path in paths:
        path = os.path.abspath(os.fspath(path))
        if is_bag_directory(path):
            out.append(path)
        elif os.path.isdir(path):
            found = sorted(os.path.join(path, d) for d in os.listdir(path)
                           if is_bag_directory(os.path.join(path, d)))
            if not found:
                raise BagError(f'{path}: neither a rosbag2 directory (no metadata.yaml) nor a '
                               'folder containing rosbag2 directories')
            out.extend(found)
        else:
            raise BagError(f'{path}: not found (expected a rosbag2 directory or a folder of them)')
    return out


def _header_stamp(raw):
    """Header stamp (ns) from the first 8 payload bytes of a CDR message starting with a Header."""
    if len(raw) < 12:
        return None
    little = raw[1] == 1  # encapsulation id 0x0001 = CDR little endian, 0x0000 = big endian
    sec, nsec = struct.unpack('<iI' if little else '>iI', raw[4:12])
    return stamp_to_ns(Stamp(sec, nsec))


class BagFile:
    """One rosbag2 directory opened for reading; use as a context manager."""

    def __init__(self, path, typestore=None):
        self.path = os.path.abspath(os.fspath(path))
        self.typestore = typestore or default_typestore()
        if not is_bag_directory(self.path):
            raise BagError(f'{self.path}: not a rosbag2 directory (metadata.yaml missing)')
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags raises ReaderError and storage-specific errors
            raise BagError(f'{self.path}: cannot open the bag: {exc}') from None
        self.topics = {c.topic: c.msgtype for c in self._reader.connections}

    def close(self):
        self._reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def describe_topics(self):
        return ', '.join(f'{t} [{m}]' for t, m in sorted(self.topics.items())) or '(none)'

    def require(self, topics):
        """Raise BagError naming the bag, each missing topic and the topics the bag has."""
        missing = [t for t in topics if t not in self.topics]
        if missing:
            raise BagError(f'{self.path}: configured topic(s) {", ".join(missing)} not in the '
                           f'bag; the bag has: {self.describe_topics()}')

    def _connections(self, topics):
        conns = [c for c in self._reader.connections if c.topic in topics]
        for conn in conns:
            self._ensure_type(conn)
        return conns

    def _ensure_type(self, conn):
        if conn.msgtype in self.typestore.fielddefs:
            return
        msgdef = getattr(conn, 'msgdef', None)
        text = getattr(msgdef, 'data', msgdef)
        if not text:
            raise BagError(f'{self.path}: topic {conn.topic} has type {conn.msgtype}, which the '
                           'ROS 2 type store does not know and the bag does not describe')
        # A private copy: the shared store stays as rosbags built it.
        store = get_typestore(Stores.ROS2_KILTED)
        store.register(get_types_from_msg(text, conn.msgtype))
        self.typestore = store

    def _header_led(self, msgtype):
        fields = self.typestore.fielddefs[msgtype][1]
        return bool(fields) and fields[0][1][-1] == _HEADER

    def stamps(self, topics, deserialize=()):
        """One pass over `topics`; stamps per topic in bag order.

        Args:
            topics: topics to index.
            deserialize: subset of `topics` whose messages are kept deserialised (small ones,
                e.g. joint states, instructions, trajectories).

        Returns:
            dict topic -> list of (stamp_ns, log_time_ns, message or None). stamp_ns is the
            header stamp, or the log (receive) time for header-less types and zero stamps.
        """
        conns = self._connections(topics)
        led = {c.id: self._header_led(c.msgtype) for c in conns}
        out = {t: [] for t in topics}
        try:
            for conn, log_time, raw in self._reader.messages(connections=conns):
                msg = None
                stamp = _header_stamp(raw) if led[conn.id] else None
                if conn.topic in deserialize:
                    msg = self.typestore.deserialize_cdr(raw, conn.msgtype)
                out[conn.topic].append((stamp or log_time, log_time, msg))
        except BagError:
            raise
        except Exception as exc:
            raise BagError(f'{self.path}: cannot read messages of {sorted(topics)}: {exc}') \
                from None
        return out

    def fetch(self, wanted):
        """Deserialise selected messages, in bag order.

        Args:
            wanted: dict topic -> set of indices within that topic (as in `stamps`).

        Yields:
            (topic, index, message) for each wanted message.
        """
        conns = self._connections(set(wanted))
        counters = dict.fromkeys(wanted, 0)
        for conn, _, raw in self._reader.messages(connections=conns):
            index = counters[conn.topic]
            counters[conn.topic] += 1
            if index in wanted[conn.topic]:
                yield conn.topic, index, self.typestore.deserialize_cdr(raw, conn.msgtype)


def bag_mtime_ns(path):
    """Latest modification time among the bag's files (cache key component)."""
    path = os.fspath(path)
    latest = os.stat(path).st_mtime_ns
    for name in os.listdir(path):
        latest = max(latest, os.stat(os.path.join(path, name)).st_mtime_ns)
    return latest


__all__ = ['BagError', 'BagFile', 'bag_mtime_ns', 'default_typestore', 'find_bags',
           'is_bag_directory']
