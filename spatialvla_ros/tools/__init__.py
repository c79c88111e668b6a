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

"""Command-line tools (console scripts), each a `main(argv)` over the rooms below.

`policy_launch` (start the policy node without ros2 launch), `demo`, `generate_demos`,
`make_default_checkpoint`, `train`, `closed_loop`, `compare_plans`, `replay_eval`, `convert`
(rosbag2 <-> LeRobot v3), with
`processes` (starting and stopping node processes for them). Nothing is re-exported: each tool
is imported by its own path.
"""
