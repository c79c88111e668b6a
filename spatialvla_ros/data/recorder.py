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

"""Write one episode as a rosbag2 directory (mcap storage + metadata.yaml), without ROS.

The bag is what `ros2 bag record` would produce for the same topics: rosbag2 metadata
version 9 with RIHS01 type hashes and the offered QoS of each topic (latched topics are marked
transient-local so `ros2 bag play` re-latches them), message definitions embedded in the mcap
schemas, CDR payloads, and the log time of each message equal to its stamp (simulated time).
"""

import os

from rosbags.interfaces import Qos
from rosbags.interfaces import QosDurability
from rosbags.interfaces import QosHistory
from rosbags.interfaces import QosLiveliness
from rosbags.interfaces import QosReliability
from rosbags.interfaces import QosTime
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer

STORAGES = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}


def _qos(latched):
    zero = QosTime(sec=0, nsec=0)        # rmw "default" (no deadline, lifespan or lease)
    return Qos(history=QosHistory.KEEP_LAST, depth=1 if latched else 10,
               reliability=QosReliability.RELIABLE,
               durability=QosDurability.TRANSIENT_LOCAL if latched else QosDurability.VOLATILE,
               deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)


class EpisodeRecorder:
    """rosbag2 writer for one episode; use as a context manager.

    Args:
        path: bag directory to create (must not exist).
        topics: [(topic, msgtype, qos)] with qos 'latched' or 'stream'; every topic is
            registered up front so the bag's topic list does not depend on what happened.
        typestore: rosbags type store providing definitions and hashes (ROS 2 Kilted).
        storage: 'mcap' (default) or 'sqlite3'.
    """

    def __init__(self, path, topics, typestore, storage='mcap'):
        if storage not in STORAGES:
            raise ValueError(f'storage: got {storage!r}, expected one of {sorted(STORAGES)}')
        if os.path.exists(path):
            raise ValueError(f'bag path {path}: already exists, expected a new directory')
        self.path = os.fspath(path)
        self.counts = {}
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections = {}
        for topic, msgtype, qos in topics:
            if topic in self._connections:
                raise ValueError(f'topics: {topic} listed twice')
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=typestore,
                offered_qos_profiles=[_qos(qos == 'latched')])
            self.counts[topic] = 0

    def write(self, log_time_ns, messages):
        """Write `messages` (objects with .topic and .serialize()) at `log_time_ns`."""
        for message in messages:
            self.write_raw(message.topic, log_time_ns, message.serialize())

    def write_raw(self, topic, log_time_ns, data):
        if topic not in self._connections:
            raise ValueError(f'topic {topic}: not registered in this bag, expected one of '
                             f'{sorted(self._connections)}')
        self._writer.write(self._connections[topic], int(log_time_ns), data)
        self.counts[topic] += 1

    def close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
