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

"""The one way every node's `main` runs its node: init, spin, clean exit on Ctrl-C, shutdown."""

import rclpy
from rclpy.executors import ExternalShutdownException


def spin_node(make_node, ros_args, release=None):
    """Initialise rclpy with `ros_args`, spin `make_node()` until shutdown; return 0.

    KeyboardInterrupt and an external shutdown are clean exits. `release(node)`, when given, runs
    before the node is destroyed (a second Ctrl-C during it skips the clean-up, still exits).
    """
    rclpy.init(args=ros_args)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            if release is not None:
                try:
                    release(node)
                except KeyboardInterrupt:
                    pass
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


__all__ = ['spin_node']
