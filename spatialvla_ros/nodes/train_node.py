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

"""The training node: the offline trainer as a ROS 2 node that reports its progress.

Parameters are the options of `spatialvla_train` (spatialvla_ros.training.options
.TrainOptions, same names with underscores), e.g. from config/params/train_node.yaml. Training
runs in a worker thread; progress is published as diagnostic_msgs/DiagnosticArray on
`diagnostics_topic` after every step (step, loss, lr, rate, held-out MSE vs baseline,
checkpoint). On Ctrl-C the trainer finishes its step and writes a checkpoint (`resume: true`
continues it). The node exits when training ends: status 2 with a one-line error when the
run is set up wrong (SPATIALVLA_DEBUG=1 logs the traceback too). Under torchrun every rank
runs this node; rank 0 publishes.
"""

import dataclasses
import os
import sys
import threading
import traceback

from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus
from diagnostic_msgs.msg import KeyValue
from rcl_interfaces.msg import ParameterDescriptor
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from spatialvla_ros.training.options import debug_requested
from spatialvla_ros.training.options import describe_options
from spatialvla_ros.training.options import error_line
from spatialvla_ros.training.options import options_from_dict
from spatialvla_ros.training.options import TrainOptions
from spatialvla_ros.training.options import USER_ERRORS

USAGE = """usage: train_node [--ros-args -p name:=value ... | --params-file FILE]

Trains a SpatialVLA policy on rosbag2 demonstrations and publishes progress as
diagnostic_msgs/DiagnosticArray. Multi-GPU: torchrun --nproc-per-node N -m
spatialvla_ros.nodes.train_node --ros-args -p strategy:=ddp ...

parameters:
  diagnostics_topic (string, default '/diagnostics'): progress output topic
"""
STATUS_NAME = 'spatialvla_train'


class TrainNode(Node):
    """Declares the options as parameters, trains in a thread, publishes diagnostics."""

    def __init__(self):
        super().__init__('train_node')
        for field in dataclasses.fields(TrainOptions):
            desc = ParameterDescriptor(description=field.metadata['help'], read_only=True)
            if field.type is tuple:
                self.declare_parameter(field.name, Parameter.Type.STRING_ARRAY, desc)
            else:
                self.declare_parameter(field.name, field.default, desc)
        self.declare_parameter('diagnostics_topic', '/diagnostics', ParameterDescriptor(
            description='progress output topic', read_only=True))
        self.rank = int(os.environ.get('RANK', '0'))
        topic = self.get_parameter('diagnostics_topic').value
        self.pub = self.create_publisher(DiagnosticArray, topic, 10)
        self.trainer = None
        self.summary = None
        self.exit_code = 0
        self.done = threading.Event()

    def options(self):
        values = {}
        for field in dataclasses.fields(TrainOptions):
            value = self.get_parameter(field.name).value
            values[field.name] = list(value or []) if field.type is tuple else value
        return options_from_dict(values)

    def publish(self, level, message, values):
        if self.rank != 0:
            return
        status = DiagnosticStatus(level=level, name=STATUS_NAME, message=message,
                                  hardware_id=self.get_fully_qualified_name())
        status.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        try:
            msg.header.stamp = self.get_clock().now().to_msg()
            self.pub.publish(msg)
        except Exception as exc:  # context shut down by Ctrl-C: training goes on
            self.get_logger().debug(f'progress not published: {exc}')

    def on_log(self, info):
        values = {k: (f'{v:.6g}' if isinstance(v, float) else v)
                  for k, v in info.items() if k != 'val'}
        if info.get('val'):
            for key in ('val_mse', 'baseline_mse'):
                values[key] = f"{info['val'][key]:.6g}"
        self.publish(DiagnosticStatus.OK,
                     f"step {info['step']}/{info['total_steps']} loss {info['loss']:.4f}",
                     values)

    def work(self, options):
        try:
            # Deferred: torch takes seconds to import, so --help and bad parameters answer
            # at once.
            from spatialvla_ros.training.trainer import Trainer
            self.trainer = Trainer(options, on_log=self.on_log)
            self.summary = self.trainer.run()
            brief = {k: v for k, v in self.summary.items() if not isinstance(v, (list, dict))}
            self.publish(DiagnosticStatus.OK, 'training finished', brief)
        except Exception as exc:  # reported on the topic and in the log, then exit
            user_error = isinstance(exc, USER_ERRORS)
            self.exit_code = 2 if user_error else 1
            if debug_requested() or not user_error:
                self.get_logger().error(traceback.format_exc())
            self.get_logger().error(f'training failed: {error_line(exc)}')
            self.publish(DiagnosticStatus.ERROR, f'training failed: {error_line(exc)}', {})
        finally:
            if self.trainer is not None:
                self.trainer.close()
            self.done.set()


def _run(node):
    """Train in a worker thread while spinning; returns the exit status."""
    try:
        options = node.options()
    except ValueError as exc:
        node.get_logger().error(f'invalid parameters: {error_line(exc)}')
        return 2
    worker = threading.Thread(target=node.work, args=(options,), daemon=True)
    worker.start()
    try:
        while rclpy.ok() and not node.done.is_set():
            rclpy.spin_once(node, timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        if node.trainer is not None:
            node.get_logger().info('stopping: finishing the step and writing a checkpoint')
            node.trainer.request_stop()
        node.done.wait()
    worker.join(timeout=5.0)
    return node.exit_code


def main(args=None):
    argv = sys.argv[1:] if args is None else list(args)
    ros_start = argv.index('--ros-args') if '--ros-args' in argv else len(argv)
    if any(a in ('-h', '--help') for a in argv[:ros_start]):
        print(USAGE + describe_options())
        return 0
    rclpy.init(args=[sys.argv[0]] + argv)
    node = TrainNode()
    try:
        return _run(node)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
