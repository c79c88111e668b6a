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

from glob import glob

from setuptools import find_packages
from setuptools import setup

package_name = 'spatialvla_ros'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
        ('share/' + package_name + '/config/params', glob('config/params/*.yaml')),
        ('share/' + package_name + '/msg', glob('msg/*.msg')),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    maintainer='spatialvla_ros maintainers',
    maintainer_email='maintainers@spatialvla-ros.invalid',
    description='3D-aware Vision-Language-Action policies (LLaVA-3D + flow matching) on ROS 2.',
    license='Apache-2.0',
    tests_require=['pytest'],
    entry_points={
        'console_scripts': [
            'spatialvla_check_config = spatialvla_ros.tools.check_config:main',
            'policy_node = spatialvla_ros.nodes.policy_node:main',
            'policy_launch = spatialvla_ros.tools.policy_launch:main',
            'sim_node = spatialvla_ros.nodes.sim_node:main',
            'generate_demos = spatialvla_ros.tools.generate_demos:main',
            'train_node = spatialvla_ros.nodes.train_node:main',
            'spatialvla_train = spatialvla_ros.tools.train:main',
            'replay_eval = spatialvla_ros.tools.replay_eval:main',
            'spatialvla_demo = spatialvla_ros.tools.demo:main',
            'spatialvla_compare = spatialvla_ros.tools.compare_plans:main',
            'spatialvla_convert_llava3d = spatialvla_ros.tools.convert_llava3d:main',
            'spatialvla_closed_loop = spatialvla_ros.tools.closed_loop:main',
            'spatialvla_convert = spatialvla_ros.tools.convert:main',
        ],
    },
)
