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

"""The policy node's chunk markers from a closed-loop episode, drawn with matplotlib.

RViz 2 does not install from pip, so this records what RViz would draw: it runs one episode
of the DDS closed loop (simulator + policy node processes, publish_markers on), subscribes to
the MarkerArray topic and plots exactly the points and colours of the recorded markers: every
predicted chunk's end-effector path (coloured by time within the chunk) and the executed path
(grey), seen from above and from the side, in the markers' frame (the robot base). The node
logs go to --out-dir.
Usage (the README's figure, about a minute on a CPU):
    python bench/chunk_markers_figure.py --checkpoint checkpoints/default --lockstep \
        --out docs/chunk_markers.png
"""

import argparse
import dataclasses
import os
import sys
import tempfile
import threading

import matplotlib
import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
from spatialvla_ros.evaluation.closed_loop import sim_parameters
from spatialvla_ros.tools.closed_loop import run_closed_loop
from spatialvla_ros.tools.flags import add_closed_loop_arguments
from spatialvla_ros.tools.flags import options_from_args
from spatialvla_ros.tools.processes import domain_of
from spatialvla_ros.tools.processes import isolated_domain
from spatialvla_ros.tools.processes import start_sim
from visualization_msgs.msg import MarkerArray

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402,I100 - after the backend is chosen

MARKER_TOPIC = '/spatialvla/chunk_markers'      # the policy node's default marker_topic


class MarkerRecorder:
    """Records every MarkerArray of the marker topic, spinning in a thread of its own."""

    def __init__(self, domain_id):
        self.arrays = []
        self._context = rclpy.Context()
        rclpy.init(context=self._context, domain_id=domain_id)
        self._node = rclpy.create_node('chunk_marker_recorder', context=self._context)
        self._node.create_subscription(MarkerArray, MARKER_TOPIC, self.arrays.append, 100)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            self._executor.spin()
        except ExternalShutdownException:
            pass

    def close(self):
        self._executor.shutdown()
        self._node.destroy_node()
        self._context.try_shutdown()
        self._thread.join(timeout=5.0)


def _points(marker):
    return np.array([[p.x, p.y, p.z] for p in marker.points])


def plot(arrays, title, path):
    """Draw the chunks and the executed path of `arrays` (top and side view) into `path`."""
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 4.2), dpi=90)
    executed = [m for m in arrays[-1].markers if m.ns == 'executed']
    for ax, (i, j), name in zip(axes, ((0, 1), (0, 2)), ('top view', 'side view')):
        if executed:
            done = _points(executed[0])
            c = executed[0].color
            ax.plot(done[:, i], done[:, j], '-', color=(c.r, c.g, c.b), lw=2.5, zorder=1,
                    label='executed')
        for array in arrays:
            for marker in array.markers:
                if marker.ns != 'chunk' or marker.type != marker.SPHERE_LIST:
                    continue
                pts = _points(marker)
                rgba = [(c.r, c.g, c.b, c.a) for c in marker.colors]
                ax.plot(pts[:, i], pts[:, j], '-', color='0.55', lw=0.6, zorder=2)
                ax.scatter(pts[:, i], pts[:, j], c=rgba, s=14, zorder=3, edgecolors='none')
        ax.set_xlabel('x [m]')
        ax.set_ylabel('y [m]' if j == 1 else 'z [m]')
        ax.set_aspect('equal', adjustable='datalim')
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    frame = arrays[-1].markers[0].header.frame_id
    axes[0].legend(loc='best', fontsize=8, title=f'frame {frame}', title_fontsize=8)
    fig.suptitle(title, fontsize=10)
    sm = plt.cm.ScalarMappable(cmap='viridis', norm=plt.Normalize(0, 1))
    fig.colorbar(sm, ax=axes, shrink=0.8, label='time within the chunk (first -> last step)')
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, bbox_inches='tight')
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--checkpoint', required=True, help='policy checkpoint directory')
    parser.add_argument('--out', default='docs/chunk_markers.png', help='PNG to write')
    add_closed_loop_arguments(parser, episodes=1, out_dir=os.path.join(
        tempfile.gettempdir(), 'chunk_markers_figure'))
    ns = parser.parse_args(argv)
    # A loaded machine takes minutes to import torch in the policy node: wait for it.
    options = dataclasses.replace(options_from_args(ns, ns.checkpoint), startup_timeout_s=900.0)
    logs = ns.out_dir
    with isolated_domain() as env:
        recorder = MarkerRecorder(domain_of(env))
        try:
            with start_sim(os.path.join(logs, 'sim_node.log'), sim_parameters(options),
                           env) as sim:
                results = run_closed_loop(ns.checkpoint, options, logs, env=env, sim=sim,
                                          policy_parameters={'publish_markers': True})
        finally:
            recorder.close()
    if not recorder.arrays:
        print(f'no MarkerArray on {MARKER_TOPIC}: nothing to draw', file=sys.stderr)
        return 1
    last = results[-1]
    title = (f'{last.task} seed {last.seed}: "{last.instruction}" - '
             f'{"success" if last.success else "failure"} after {last.steps} ticks, '
             f'{len(recorder.arrays)} chunks')
    plot(recorder.arrays, title, ns.out)
    print(f'{ns.out}: {len(recorder.arrays)} marker arrays, {title} '
          f'({os.path.getsize(ns.out) // 1024} KB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
