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

"""Two cameras end to end: the simulator's side camera, recorded, trained on, run in closed loop.

Real pybullet renders, real rosbag2 bags from the demo generator, the real dataset and
trainer, and the policy in the in-process runner and behind the DDS loop (sim node + policy
node processes). The side camera's mount in the policy config is the simulator's, so both
views put the table at z = 0 in the base frame: a wrong mount or a swapped view fails that.
"""

import dataclasses
from dataclasses import asdict
import json
import os

import numpy as np
import pytest
from repo_paths import REPO_ROOT
from rosbags.rosbag2 import Reader
from spatialvla_ros.data.dataset import load_episodes
from spatialvla_ros.evaluation import report
from spatialvla_ros.evaluation.closed_loop import ClosedLoopOptions
from spatialvla_ros.evaluation.closed_loop import HELD_OUT_SEED_START
from spatialvla_ros.evaluation.closed_loop import recipe_camera
from spatialvla_ros.evaluation.closed_loop import sim_parameters
from spatialvla_ros.evaluation.in_process import run as run_in_process
from spatialvla_ros.policies.configuration_policy import PolicyConfig
from spatialvla_ros.policies.policy_spatialvla import SpatialVLAPolicy
from spatialvla_ros.sim import messages as sim_msgs
from spatialvla_ros.sim.constants import SIDE_CAMERA_QUAT
from spatialvla_ros.sim.constants import SIDE_CAMERA_XYZ
from spatialvla_ros.tools import closed_loop
from spatialvla_ros.tools.generate_demos import DemoJob
from spatialvla_ros.tools.generate_demos import DemoSettings
from spatialvla_ros.tools.generate_demos import generate
from spatialvla_ros.training.options import TrainOptions
from spatialvla_ros.training.trainer import Trainer
import yaml

TOPICS = sim_msgs.SimTopics()
SETTINGS = DemoSettings(width=32, height=32, cloud=False, side_camera=True)


@pytest.fixture(scope='module')
def demos(tmp_path_factory):
    out = tmp_path_factory.mktemp('two_camera_demos')
    rows = generate(str(out), [DemoJob('reach', 0), DemoJob('reach', 1)], SETTINGS,
                    progress=False)
    return [str(out / r['bag']) for r in rows if r['kept']]


@pytest.fixture(scope='module')
def config_path(tmp_path_factory):
    """config/late_gemma.yaml with data.cameras = the simulator's front and side cameras."""
    with open(os.path.join(REPO_ROOT, 'config', 'late_gemma.yaml'), encoding='utf-8') as f:
        values = yaml.safe_load(f)
    values['data']['cameras'] = TOPICS.data_cameras(side_camera=True)
    path = tmp_path_factory.mktemp('two_camera_config') / 'config.yaml'
    path.write_text(yaml.safe_dump(values), encoding='utf-8')
    return str(path)


@pytest.fixture(scope='module')
def checkpoint(demos, config_path, tmp_path_factory):
    """Train a tiny two-camera policy for a few steps on the two-camera demos."""
    out = tmp_path_factory.mktemp('two_camera_run')
    trainer = Trainer(TrainOptions(
        config=config_path, data=tuple(demos), out_dir=str(out), strategy='single',
        device='cpu', steps=3, batch_size=4, checkpoint_every=3, log_every=1, val_every=100,
        val_max_samples=4, progress=False, plot=False).validate())
    try:
        summary = trainer.run()
    finally:
        trainer.close()
    assert summary['steps'] == 3 and summary['train_episodes'] >= 1
    return summary['checkpoint']


def test_a_two_camera_demo_records_both_cameras(demos):
    assert len(demos) == 2
    with Reader(demos[0]) as reader:
        counts, poses = {}, {}
        for conn, _, raw in reader.messages():
            counts[conn.topic] = counts.get(conn.topic, 0) + 1
            if conn.msgtype == sim_msgs.TRANSFORM:
                msg = sim_msgs.typestore().deserialize_cdr(raw, conn.msgtype)
                t, q = msg.transform.translation, msg.transform.rotation
                poses[conn.topic] = ((t.x, t.y, t.z), (q.x, q.y, q.z, q.w), msg.child_frame_id)
    frames = counts[TOPICS.color]
    assert frames >= 2
    for topic in (TOPICS.side_color, TOPICS.side_depth, TOPICS.side_camera_info):
        assert counts[topic] == frames, topic
    assert TOPICS.side_cloud not in counts                   # the recording has no clouds
    assert poses[TOPICS.side_camera_pose] == (SIDE_CAMERA_XYZ, SIDE_CAMERA_QUAT,
                                              TOPICS.side_camera_frame)
    assert poses[TOPICS.camera_pose][0] != SIDE_CAMERA_XYZ


def test_demos_cached_before_the_side_camera_existed_keep_their_meaning(tmp_path):
    """A summary.json without side_camera was recorded with one camera: reused, not re-recorded."""
    old = asdict(DemoSettings())
    del old['side_camera']
    rows = [{'bag': 'reach_000000', 'task': 'reach', 'seed': 0, 'target': -1, 'success': False,
             'steps': 1, 'instruction': 'reach the red cube', 'kept': False}]
    (tmp_path / 'summary.json').write_text(json.dumps({'settings': old, 'episodes': rows}),
                                           encoding='utf-8')
    assert generate(str(tmp_path), [DemoJob('reach', 0)], DemoSettings(), progress=False) == rows
    with pytest.raises(ValueError, match=r'\(side_camera differ\)'):
        generate(str(tmp_path), [DemoJob('reach', 0)], DemoSettings(side_camera=True),
                 progress=False)


def test_the_dataset_gives_both_views_in_the_base_frame(demos, config_path):
    config = PolicyConfig.from_yaml(config_path)
    episodes, _ = load_episodes(demos, config)
    assert len(episodes) == 2
    obs, _, _ = episodes[0].sample(0)
    assert obs.camera_names == ['front', 'side'] and len(obs.images) == 2
    assert not np.array_equal(obs.images[0], obs.images[1])   # two views, not one twice
    for name, points in zip(obs.camera_names, obs.points):
        valid = points[np.isfinite(points).all(-1)]
        # Most of what both cameras see is the table top (z = 0 in the base frame).
        on_table = np.abs(valid[:, 2]) < 0.005
        assert on_table.mean() > 0.4, name
    # The same table, seen from both sides: the table points overlap in x.
    xs = [p[np.isfinite(p).all(-1) & (np.abs(p[..., 2]) < 0.005)][:, 0] for p in obs.points]
    assert abs(np.median(xs[0]) - np.median(xs[1])) < 0.3


def test_a_two_camera_policy_trains_and_runs_in_process(checkpoint, tmp_path):
    policy = SpatialVLAPolicy.from_pretrained(checkpoint)
    assert [c.name for c in policy.config.data.cameras] == ['front', 'side']
    # The in-process runner renders the side camera because the policy listens to it.
    options = ClosedLoopOptions(max_steps=3, image_size=32)
    result, = run_in_process(policy, ('reach',), [HELD_OUT_SEED_START], options)
    assert result.chunks >= 1 and 1 <= result.steps <= 3
    # The DDS loop is told to start the simulator with the side camera for this checkpoint.
    camera = recipe_camera(checkpoint)
    assert camera['side_camera'] is True
    assert sim_parameters(ClosedLoopOptions(side_camera=True))['side_camera'] is True
    path = report.write_closed_loop_report([result], dataclasses.replace(
        options, side_camera=camera['side_camera'], episodes=1), str(tmp_path))
    assert '(and the side camera)' in open(path, encoding='utf-8').read()


def test_the_policy_node_runs_with_two_cameras_over_dds(checkpoint, tmp_path, ros_env):
    options = ClosedLoopOptions(tasks=('reach',), episodes=1, max_steps=3, image_size=32,
                                side_camera=True, lockstep=True, startup_timeout_s=120.0)
    result, = closed_loop.run_closed_loop(checkpoint, options, str(tmp_path), env=ros_env)
    # In lockstep every chunk answers an observation, which needs both cameras' images.
    assert result.chunks >= 1 and 1 <= result.steps <= 3
    log = (tmp_path / 'sim_node.log').read_text(encoding='utf-8')
    assert 'side camera' in log
