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


"""Play a rosbag2 (mcap or sqlite3, any topics) over DDS at its recorded timing, or faster.

Messages are read with `rosbags` (the bag's own message definitions when it carries them, the
ROS 2 Kilted definitions otherwise), converted field by field into the rclpy classes of this
install (`perception.bag_messages`) and published with the QoS they were recorded with (latched
topics stay transient-local, as `ros2 bag play` does). The next message is converted before
the player sleeps until its due time, so conversion never delays a message.
"""

from dataclasses import dataclass
from dataclasses import field
import logging
import os
from pathlib import Path
import time

from rclpy.qos import DurabilityPolicy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rosbags.highlevel import AnyReader
from rosbags.interfaces import QosDurability
from rosbags.interfaces import QosReliability
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.perception.bag_messages import MessageConverter
from spatialvla_ros.perception.messages import ConversionError
from spatialvla_ros.perception.messages import rclpy_class

logger = logging.getLogger(__name__)


class BagPlaybackError(ValueError):
    """The bag cannot be opened or a requested topic is not in it."""


def open_bag(path):
    """Open a rosbags AnyReader over one bag directory (or ROS 1 .bag file)."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise BagPlaybackError(f'{path}: not found (expected a rosbag2 directory)')
    try:
        reader = AnyReader([Path(path)], default_typestore=get_typestore(Stores.ROS2_KILTED))
        reader.open()
    except Exception as exc:  # noqa: BLE001 - rosbags raises several reader-specific errors
        raise BagPlaybackError(f'{path}: cannot open the bag: {exc}') from None
    return reader


def _recorded_qos(connections):
    """Return the QoS the topic was recorded with (reliable, keep last 10 when unknown)."""
    profiles = []
    for conn in connections:
        profiles += list(getattr(conn.ext, 'offered_qos_profiles', None) or [])
    latched = any(p.durability == QosDurability.TRANSIENT_LOCAL for p in profiles)
    best_effort = bool(profiles) and all(p.reliability == QosReliability.BEST_EFFORT
                                         for p in profiles)
    depth = max([int(p.depth) for p in profiles if int(p.depth) > 0] + [1 if latched else 10])
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=depth,
        reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)


@dataclass
class PlaybackStats:
    """What one playback did."""

    published: dict = field(default_factory=dict)   # topic -> messages published
    skipped: dict = field(default_factory=dict)     # topic -> reason it was not played
    bag_duration_s: float = 0.0                     # recorded span of the played messages
    wall_s: float = 0.0                             # how long playing took
    max_lateness_s: float = 0.0                     # worst delay behind the due time


class BagPlayer:
    """Publishes one bag's messages on `node` at recorded timing / `rate`.

    Args:
        node: rclpy node that owns the publishers.
        path: bag directory.
        rate: playback speed factor (2.0 = twice as fast as recorded).
        topics: topics to play (None: all of them).
        exclude: topics never played (e.g. the recorded actions, the policy's own outputs).
        restamp: shift every header stamp by one offset so that the bag's last message is
            stamped "now" when playback starts: intervals stay exact, every stamp is in the
            past when it is published, and bags recorded with the same stamps (our demo
            generator starts every episode at one fixed time) can follow each other.
    """

    def __init__(self, node, path, rate=1.0, topics=None, exclude=(), restamp=False):
        if not rate > 0:
            raise BagPlaybackError(f'rate: got {rate}, expected a speed factor > 0')
        self.node = node
        self.path = os.path.abspath(os.fspath(path))
        self.rate = float(rate)
        self.reader = open_bag(self.path)
        self.stamp_offset_ns = 0
        if restamp:
            self.stamp_offset_ns = node.get_clock().now().nanoseconds - self.reader.end_time
        self.converter = MessageConverter(self.stamp_offset_ns)
        by_topic = {}
        for conn in self.reader.connections:
            by_topic.setdefault(conn.topic, []).append(conn)
        self.bag_topics = {t: conns[0].msgtype for t, conns in by_topic.items()}
        if topics is not None:
            missing = [t for t in topics if t not in by_topic]
            if missing:
                self.close()
                raise BagPlaybackError(
                    f'{self.path}: topic(s) {", ".join(missing)} not in the bag; it has: '
                    + ', '.join(f'{t} [{m}]' for t, m in sorted(self.bag_topics.items())))
        self.stats = PlaybackStats()
        self._connections, self._classes, self.publishers = [], {}, {}
        for topic, conns in sorted(by_topic.items()):
            if topic in exclude or (topics is not None and topic not in topics):
                continue
            try:
                cls = rclpy_class(conns[0].msgtype)
            except ConversionError as exc:
                self.stats.skipped[topic] = str(exc)
                logger.warning('%s: %s; topic not played', topic, exc)
                continue
            self._classes[topic] = cls
            self.publishers[topic] = node.create_publisher(cls, topic, _recorded_qos(conns))
            self._connections += conns
            self.stats.published[topic] = 0

    def close(self):
        for pub in getattr(self, 'publishers', {}).values():
            self.node.destroy_publisher(pub)
        self.publishers = {}
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def wait_for_subscribers(self, required=(), timeout_s=30.0, should_stop=None):
        """Wait for DDS discovery between the player's publishers and their subscribers.

        Each topic in `required` needs a matched subscriber, and every publisher whose topic
        has subscribers in the graph must be matched with all of them. Returns the topics still
        unmatched ([] when ready).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = []
            for topic, pub in self.publishers.items():
                wanted = self.node.count_subscribers(topic)
                if topic in required:
                    wanted = max(wanted, 1)
                if pub.get_subscription_count() < wanted:
                    waiting.append(topic)
            if not waiting or time.monotonic() > deadline or (should_stop and should_stop()):
                return waiting
            time.sleep(0.05)

    def play(self, on_publish=None, should_stop=None):
        """Publish every selected message at its due time; returns PlaybackStats.

        on_publish(topic, rclpy_msg, log_time_ns, wall_monotonic_s) is called after each one.
        """
        stats, reader = self.stats, self.reader
        first = last = None
        start = time.monotonic()
        for conn, log_time, raw in reader.messages(connections=self._connections):
            if should_stop is not None and should_stop():
                break
            msg = self.converter.convert(reader.deserialize(raw, conn.msgtype),
                                         self._classes[conn.topic])
            if first is None:
                first = log_time
            last = log_time
            due = start + (log_time - first) / NS_PER_S / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                stats.max_lateness_s = max(stats.max_lateness_s, -delay)
            self.publishers[conn.topic].publish(msg)
            stats.published[conn.topic] += 1
            if on_publish is not None:
                on_publish(conn.topic, msg, log_time, time.monotonic())
        stats.bag_duration_s = ((last - first) / NS_PER_S) if first is not None else 0.0
        stats.wall_s = time.monotonic() - start
        return stats


def message_stamp_ns(msg):
    """Header stamp of an rclpy message [ns], or None when it has no header."""
    header = getattr(msg, 'header', None)
    if header is None or not hasattr(header, 'stamp'):
        return None
    return stamp_to_ns(header.stamp)


__all__ = ['BagPlaybackError', 'BagPlayer', 'PlaybackStats', 'message_stamp_ns', 'open_bag']
