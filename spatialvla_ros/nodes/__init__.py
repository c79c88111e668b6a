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

"""The ROS 2 nodes: thin rclpy adapters over the ROS-free rooms below them.

`policy_node` (the lifecycle policy node; `policy_runtime` its worker, `policy_parameters` its
parameter table, `launch_arguments` what its launchers read), `sim_node` (the simulator),
`train_node`, `bag_player`, `replay_policy` and `replay_runner` (bag replay evaluation). Each
is imported by its own path; nothing is re-exported, so importing one node loads no other.
"""
