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


"""Evaluation of trained policies: bag replay over DDS, closed loop in the simulator, comparison.

ROS-free modules (import without rclpy): `replay` (alignment and metrics), `report` (Markdown,
CSV and plots), `latency` (model timing), `comparison` (the plan comparison table).
rclpy modules: `message_conversion`, `bag_player`, `replay_policy`, `closed_loop`, `processes`.
"""
