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


"""Bag replay evaluation over DDS: play a bag to a running policy node and score its answers.

The evaluator plays every topic of the bag except the recorded actions (and the policy's own
outputs) at the recorded timing (`rate` times faster on request), collects the policy's
JointTrajectory / ActionChunk / PolicyStatus messages, and compares the trajectories with the
recorded actions by stamp (`replay.align`). Between bags the policy node is taken through
deactivate -> activate when it is a lifecycle node, which clears its per-topic stamp order and
its synchroniser (the demo generator stamps every episode from the same instant).
"""

from dataclasses import dataclass
from dataclasses import field
import os
import threading
import time

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from spatialvla_ros.core_types import NS_PER_S
from spatialvla_ros.core_types import stamp_to_ns
from spatialvla_ros.evaluation import replay
from spatialvla_ros.nodes.bag_player import BagPlaybackError
from spatialvla_ros.nodes.bag_player import BagPlayer
from spatialvla_ros.nodes.bag_player import message_stamp_ns
from spatialvla_ros.nodes.bag_player import open_bag
from spatialvla_ros.nodes.lifecycle_client import LifecycleClient
from spatialvla_ros.nodes.lifecycle_client import LifecycleError
from spatialvla_ros_interfaces.msg import ActionChunk
from spatialvla_ros_interfaces.msg import PolicyStatus
from trajectory_msgs.msg import JointTrajectory

_READY_STATES = (PolicyStatus.STATE_ACTIVE, PolicyStatus.STATE_WAITING_FOR_INPUT)


@dataclass(frozen=True)
class ReplayOptions:
    rate: float = 1.0                      # playback speed factor
    topics: tuple = None                   # topics to play (None: all but the excluded)
    exclude: tuple = ()                    # topics never played
    action_topic: str = '/spatialvla/expert_trajectory'  # the recorded actions
    observation_topic: str = ''            # frames that count as observations ('': 1st Image)
    trajectory_topic: str = '/joint_trajectory'          # the policy's JointTrajectory
    chunk_topic: str = '/spatialvla/action_chunk'
    status_topic: str = '/spatialvla/status'
    policy_node: str = '/policy_node'      # lifecycle node reset between bags ('': never)
    wait_timeout_s: float = 60.0           # for the policy to be ready
    grace_s: float = 3.0                   # wait for late answers after the last message
    tolerance_s: float = 0.0               # stamp pairing tolerance (0: half the action period)
    restamp: bool = False                  # shift stamps so the bag ends "now" (BagPlayer)


@dataclass
class ReplayResult:
    """Everything one bag's replay measured (stamps are the bag's own, offset removed)."""

    bag: str
    recorded: replay.RecordedActions
    predictions: list
    alignment: replay.Alignment
    metrics: replay.ReplayMetrics
    inference_latency_s: list = field(default_factory=list)   # policy-reported (ActionChunk)
    round_trip_s: list = field(default_factory=list)          # last input published -> answer
    observations_sent: int = 0
    observations_answered: int = 0
    answered_stamps: list = field(default_factory=list)
    policy_dropped_frames: int = 0
    playback: object = None
    observation_topic: str = ''
    rate: float = 1.0

    @property
    def unanswered(self):
        return self.observations_sent - self.observations_answered

    def summary(self):
        """Return the figures as a plain dict (JSON, report)."""
        return {
            'bag': self.bag, 'rate': self.rate, 'observation_topic': self.observation_topic,
            'observations_sent': self.observations_sent,
            'observations_answered': self.observations_answered,
            'unanswered_observations': self.unanswered,
            'policy_dropped_frames': self.policy_dropped_frames,
            'predictions': len(self.predictions),
            'metrics': self.metrics.to_dict(),
            'inference_latency_s': replay.distribution(self.inference_latency_s),
            'round_trip_s': replay.distribution(self.round_trip_s),
            'bag_duration_s': getattr(self.playback, 'bag_duration_s', 0.0),
            'playback_wall_s': getattr(self.playback, 'wall_s', 0.0),
            'max_playback_lateness_s': getattr(self.playback, 'max_lateness_s', 0.0),
            'answered_stamps_ns': [int(s) for s in self.answered_stamps],
        }


def read_recorded_actions(path, topic):
    """Read the RecordedActions of `topic` in the bag at `path` (JointTrajectory, JointState)."""
    reader = open_bag(path)
    try:
        conns = [c for c in reader.connections if c.topic == topic]
        if not conns:
            topics = sorted({c.topic for c in reader.connections})
            raise BagPlaybackError(f'{path}: action topic {topic} not in the bag; it has: '
                                   + ', '.join(topics))
        entries = [(t, reader.deserialize(raw, c.msgtype))
                   for c, t, raw in reader.messages(connections=conns)]
    finally:
        reader.close()
    return replay.recorded_actions_from_messages(entries, f'{path}: {topic}')


class ReplayEvaluator(Node):
    """Collects a policy's answers while bags are played to it."""

    def __init__(self, options, node_name='replay_eval', **kwargs):
        super().__init__(node_name, **kwargs)
        self.options = options
        qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self._lock = threading.Lock()
        self._trajectories, self._chunks = [], []
        self._status = None
        self.create_subscription(JointTrajectory, options.trajectory_topic, self._on_traj, qos)
        self.create_subscription(ActionChunk, options.chunk_topic, self._on_chunk, qos)
        self.create_subscription(PolicyStatus, options.status_topic, self._on_status, 10)
        self._policy = LifecycleClient(self, options.policy_node) if options.policy_node \
            else None

    # ------------------------------------------------------------------ callbacks
    def _on_traj(self, msg):
        now = time.monotonic()
        with self._lock:
            self._trajectories.append((now, msg))

    def _on_chunk(self, msg):
        with self._lock:
            self._chunks.append(msg)

    def _on_status(self, msg):
        with self._lock:
            self._status = msg

    # ------------------------------------------------------------------ helpers
    def reset_policy(self):
        """Take the lifecycle policy node through deactivate -> activate, if it is active."""
        if self._policy is None or not self._policy.ready() or self._policy.state() != 'active':
            return False
        try:
            self._policy.ensure('inactive', 60.0)
            self._policy.ensure('active', 60.0)
        except LifecycleError as exc:
            self.get_logger().warning(str(exc))
            return False
        return True

    def wait_for_policy(self, player, observation_topic):
        """Block until the policy publishes, subscribes to the observations and says ready."""
        opts = self.options
        deadline = time.monotonic() + opts.wait_timeout_s
        while self.count_publishers(opts.trajectory_topic) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f'no publisher on {opts.trajectory_topic} within '
                                   f'{opts.wait_timeout_s:.0f} s: is the policy node running '
                                   'and active?')
            time.sleep(0.05)
        left = max(deadline - time.monotonic(), 1.0)
        waiting = player.wait_for_subscribers([observation_topic], timeout_s=left)
        if observation_topic in waiting:
            raise TimeoutError(f'nobody subscribed to {observation_topic} within '
                               f'{opts.wait_timeout_s:.0f} s')
        if self.count_publishers(opts.status_topic) > 0:
            while time.monotonic() < deadline:
                with self._lock:
                    status = self._status
                if status is not None and status.state in _READY_STATES:
                    break
                time.sleep(0.05)

    # ------------------------------------------------------------------ evaluation
    def evaluate_bag(self, path):
        """Play one bag and score the answers; returns a ReplayResult."""
        opts = self.options
        recorded = read_recorded_actions(path, opts.action_topic)
        exclude = set(opts.exclude) | {opts.action_topic, opts.trajectory_topic,
                                       opts.chunk_topic, opts.status_topic}
        self.reset_policy()
        with BagPlayer(self, path, opts.rate, opts.topics, tuple(exclude),
                       opts.restamp) as player:
            obs_topic = opts.observation_topic or _first_image_topic(player)
            if obs_topic not in player.publishers:
                raise BagPlaybackError(f'{path}: observation topic {obs_topic!r} is not played '
                                       f'(played: {sorted(player.publishers)})')
            self.wait_for_policy(player, obs_topic)
            offset = player.stamp_offset_ns
            with self._lock:
                self._trajectories, self._chunks = [], []
                dropped0 = self._status.dropped_frames if self._status is not None else 0
            published_at, obs_stamps = {}, set()

            def on_publish(topic, msg, log_time, wall):
                stamp = message_stamp_ns(msg)
                if stamp:
                    published_at[stamp] = wall
                    if topic == obs_topic:
                        obs_stamps.add(stamp)

            stats = player.play(on_publish)
            end = time.monotonic() + opts.grace_s
            while time.monotonic() < end:
                with self._lock:
                    answered = {stamp_to_ns(m.header.stamp) for _, m in self._trajectories}
                if obs_stamps <= answered:
                    break
                time.sleep(0.02)
        with self._lock:
            trajectories, chunks = list(self._trajectories), list(self._chunks)
            dropped1 = self._status.dropped_frames if self._status is not None else dropped0
        preds, round_trip = [], []
        for received, msg in trajectories:
            stamp = stamp_to_ns(msg.header.stamp)
            if stamp not in obs_stamps or not msg.points:
                continue          # an answer to something this bag did not send
            chunk = replay.chunk_from_trajectory(msg, received)
            chunk.stamp_ns -= offset
            preds.append(chunk)
            round_trip.append(received - published_at[stamp])
        latencies = [float(c.inference_latency) for c in chunks
                     if stamp_to_ns(c.observation_stamp) in obs_stamps]
        tolerance = int(opts.tolerance_s * NS_PER_S) if opts.tolerance_s > 0 else None
        alignment = replay.align(preds, recorded, tolerance)
        answered = sorted({p.stamp_ns for p in preds})
        return ReplayResult(
            bag=os.path.abspath(path), recorded=recorded, predictions=preds,
            alignment=alignment, metrics=replay.replay_metrics(alignment),
            inference_latency_s=latencies, round_trip_s=round_trip,
            observations_sent=len(obs_stamps), observations_answered=len(answered),
            answered_stamps=answered, policy_dropped_frames=int(dropped1 - dropped0),
            playback=stats, observation_topic=obs_topic, rate=opts.rate)


def _first_image_topic(player):
    images = sorted(t for t, m in player.bag_topics.items()
                    if m in ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
                    and t in player.publishers)
    colour = [t for t in images if 'color' in t or 'rgb' in t]
    if not (colour or images):
        raise BagPlaybackError(f'{player.path}: no Image topic to count observations by; give '
                               '--observation-topic')
    return (colour or images)[0]


__all__ = ['ReplayEvaluator', 'ReplayOptions', 'ReplayResult', 'read_recorded_actions']
