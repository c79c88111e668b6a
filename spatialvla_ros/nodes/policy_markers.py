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

"""
The policy node's view of its predicted motion, as a visualization_msgs/MarkerArray for RViz.

Each chunk becomes the path of one link (the end effector) through the chunk's joint targets,
by forward kinematics of the robot's URDF (`perception.kinematics`, Pinocchio), drawn as a line
and spheres coloured by time (early: dark blue, late: yellow); the joint states received draw
the path the robot executed. Poses are in the URDF's root link, the frame of /tf's tree.
"""

import collections
import threading

from geometry_msgs.msg import Point
import numpy as np
from spatialvla_ros.nodes.policy_messages import to_time
from spatialvla_ros.perception.kinematics import RobotKinematics
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker
from visualization_msgs.msg import MarkerArray

# Viridis at 0, 1/4, 1/2, 3/4, 1: dark blue -> yellow, readable on RViz's dark background.
_TIME_COLOURS = np.array([[0.267, 0.005, 0.329], [0.229, 0.322, 0.546], [0.128, 0.567, 0.551],
                          [0.369, 0.789, 0.383], [0.993, 0.906, 0.144]])
EXECUTED_COLOUR = (0.85, 0.85, 0.85, 1.0)
LINE_WIDTH = 0.004          # [m]
SPHERE_DIAMETER = 0.012     # [m]
EXECUTED_POINTS = 500       # the executed path keeps this many points,
EXECUTED_SPACING = 0.002    # [m] each at least this far from the previous one


def time_colours(count):
    """(count, 4) RGBA in [0, 1]: viridis from the first step to the last."""
    t = np.linspace(0.0, 1.0, count) if count > 1 else np.zeros(count)
    anchors = np.linspace(0.0, 1.0, len(_TIME_COLOURS))
    rgb = np.stack([np.interp(t, anchors, _TIME_COLOURS[:, c]) for c in range(3)], axis=-1)
    return np.hstack([rgb, np.ones((count, 1))])


class ChunkMarkers:
    """Marker arrays of predicted chunks plus the executed path of one link.

    `names`: the joint names of the chunk's columns (the checkpoint's action names). The robot
    model arrives by `set_robot` (the robot_description parameter or the latched topic); until
    then `message` returns None. Thread-safe: joint states and chunks come from two threads.
    """

    def __init__(self, names, link):
        self.names, self.link = list(names), link
        self.kinematics = None
        self._lock = threading.Lock()
        self._executed = collections.deque(maxlen=EXECUTED_POINTS)

    def set_robot(self, urdf_xml, what='robot_description'):
        """Take a URDF; ValueError when `link` is not in it or the chunk does not move it."""
        kinematics = RobotKinematics(urdf_xml, what)
        missing = [j for j in kinematics.chain_joints(self.link) if j not in self.names]
        if missing:
            raise ValueError(f'{what}: link {self.link!r} (marker_link) moves with joints '
                             f'{missing} that the chunk does not name (its joints: '
                             f'{self.names})')
        with self._lock:
            self.kinematics = kinematics
            self._executed.clear()

    def executed(self, names, positions):
        """Add the link's position at a received joint state to the executed path.

        A malformed state is skipped here: the node's input checks count and report it.
        """
        positions = np.asarray(positions, dtype=np.float64)
        if len(names) != len(positions) or not np.all(np.isfinite(positions)):
            return
        with self._lock:
            if self.kinematics is None:
                return
            xyz = self.kinematics.link_poses(self.link, list(names), [list(positions)])[0][0]
            if not self._executed or np.linalg.norm(xyz - self._executed[-1]) >= \
                    EXECUTED_SPACING:
                self._executed.append(xyz)

    def message(self, chunk, stamp_ns):
        """Return the MarkerArray of `chunk` (H, len(names)); None without a robot model."""
        with self._lock:
            if self.kinematics is None:
                return None
            path = self.kinematics.link_poses(self.link, self.names, chunk)[0]
            executed = list(self._executed)
            frame = self.kinematics.root_link
        colours = [ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))
                   for r, g, b, a in time_colours(len(path))]
        line = _marker('chunk', 0, Marker.LINE_STRIP, frame, stamp_ns, path, LINE_WIDTH)
        line.colors = colours
        spheres = _marker('chunk', 1, Marker.SPHERE_LIST, frame, stamp_ns, path,
                          SPHERE_DIAMETER)
        spheres.colors = colours
        out = MarkerArray(markers=[line, spheres])
        if len(executed) >= 2:
            done = _marker('executed', 0, Marker.LINE_STRIP, frame, stamp_ns, executed,
                           LINE_WIDTH)
            done.color = ColorRGBA(r=EXECUTED_COLOUR[0], g=EXECUTED_COLOUR[1],
                                   b=EXECUTED_COLOUR[2], a=EXECUTED_COLOUR[3])
            out.markers.append(done)
        return out


def _marker(ns, marker_id, kind, frame, stamp_ns, points, size):
    marker = Marker(ns=ns, id=marker_id, type=kind, action=Marker.ADD)
    marker.header.frame_id = frame
    marker.header.stamp = to_time(stamp_ns)
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = size
    marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in points]
    return marker
