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

"""spatialvla_ros: a 3D-aware Vision-Language-Action policy on ROS 2.

LLaVA-3D style 3D tokens and a flow-matching action expert, attached in three fusion plans.

Rooms, dependencies pointing down: `core_types` / `typed_config` (leaves), `models` (the network,
ROS-free), `perception` / `data` / `sim`, `policies` (ROS-free inference), `training` /
`evaluation` (runners), `nodes` (thin rclpy adapters), `tools` (command-line tools).
"""
