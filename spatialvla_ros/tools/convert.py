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

"""Convert demonstrations between rosbag2 and LeRobot v3 datasets (`spatialvla_convert`).

    spatialvla_convert to-lerobot --config config/late_gemma.yaml --out demos_lerobot demos/
    spatialvla_convert to-rosbag --config config/late_gemma.yaml --out demos_back demos_lerobot

The config's `data:` section names the topics (bag side) and the dataset keys (LeRobot side);
its `action:` section the joint names and dt. Bags are ours or `ros2 bag record`'s, mcap or
sqlite3; each becomes one LeRobot episode holding the frames the trainer would take from it
(colour as MP4, depth exactly, state, action, stamps, task, CameraInfo and camera mount), and
each episode of a dataset becomes one bag. Errors print one line and exit with status 2.
"""

import argparse
import logging
import sys

from spatialvla_ros.data.bag_reader import BagError
from spatialvla_ros.data.lerobot_dataset import LeRobotFormatError
from spatialvla_ros.data.lerobot_episodes import bags_to_lerobot
from spatialvla_ros.data.lerobot_episodes import lerobot_to_bags
from spatialvla_ros.data.recorder import STORAGES
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from tqdm import tqdm


def build_parser():
    parser = argparse.ArgumentParser(
        prog='spatialvla_convert',
        description='Convert rosbag2 demonstrations to a LeRobot v3 dataset (Parquet + MP4) '
                    'and back.')
    sub = parser.add_subparsers(dest='direction', required=True)
    to_lerobot = sub.add_parser('to-lerobot', help='rosbag2 episodes -> one LeRobot v3 dataset')
    to_lerobot.add_argument('bags', nargs='+',
                            help='rosbag2 directories, or folders of them (mcap or sqlite3)')
    to_lerobot.add_argument('--fps', type=int, default=0,
                            help='dataset frame rate (default 0: 1 / action.dt of the config)')
    to_lerobot.add_argument('--keep-failed', action='store_true',
                            help='also convert episodes whose outcome says success=false')
    to_rosbag = sub.add_parser('to-rosbag', help='LeRobot v3 dataset -> one rosbag2 per episode')
    to_rosbag.add_argument('dataset', help='LeRobot v3 dataset directory (meta/info.json)')
    to_rosbag.add_argument('--storage', choices=sorted(STORAGES), default='mcap',
                           help='bag storage (default: %(default)s)')
    for p in (to_lerobot, to_rosbag):
        p.add_argument('--config', required=True,
                       help="experiment YAML or a checkpoint's config.yaml (data: topics and "
                            'dataset keys, action: joint names and dt)')
        p.add_argument('--out', required=True,
                       help='new dataset directory (to-lerobot) or folder of bags (to-rosbag)')
        p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(args=None):
    ns = build_parser().parse_args(args)
    logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(name)s: %(message)s')
    try:
        config = PolicyConfig.from_yaml(ns.config)
        if ns.direction == 'to-lerobot':
            with tqdm(unit='bag', desc='to-lerobot', disable=ns.no_progress) as bar:
                count, warnings = bags_to_lerobot(ns.bags, ns.out, config, fps=ns.fps,
                                                  skip_failed=not ns.keep_failed,
                                                  progress=lambda _: bar.update(1))
            print(f'{ns.out}: {count} episode(s) written, {len(warnings)} warning(s)')
        else:
            with tqdm(unit='episode', desc='to-rosbag', disable=ns.no_progress) as bar:
                bags = lerobot_to_bags(ns.dataset, ns.out, config, ns.storage,
                                       progress=lambda _: bar.update(1))
            print(f'{ns.out}: {len(bags)} bag(s) written')
    except (BagError, LeRobotFormatError, ValueError, OSError) as exc:
        print(f'error: {" ".join(str(exc).split())}', file=sys.stderr)
        return 2
    return 0


__all__ = ['build_parser', 'main']

if __name__ == '__main__':
    sys.exit(main())
