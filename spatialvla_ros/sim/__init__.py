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

"""The PyBullet Franka Panda workcell: the simulator behind the demos, bags and closed loop.

`panda_env` (the scene, physics and simulated time), `camera` (pinhole RGB-D rendering),
`tasks` (language-conditioned tasks and success checks), `expert` (scripted expert),
`trajectory` (joint trajectory execution), `rollout` (one episode, shared by the live node and
the demo generator), `messages` (its ROS messages as CDR bytes), `constants` and `vocabulary`
(importable without pybullet). Nothing is re-exported here: importing `spatialvla_ros.sim`
must not load pybullet for the modules that only need the messages or the constants.
"""
