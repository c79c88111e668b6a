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

"""spatialvla_check_config: load and validate experiment configs; print a summary of each.

Every section is checked (network keys, data:, train:), as the trainer reads them.
"""

import argparse
import sys

from spatialvla_ros.training.configuration_training import TrainingConfig
from spatialvla_ros.typed_config import ConfigError


def main(args=None):
    parser = argparse.ArgumentParser(
        prog='spatialvla_check_config',
        description='Load and validate spatialvla_ros YAML configs; print a summary of each.')
    parser.add_argument('configs', nargs='+', help='YAML config files to validate')
    ns = parser.parse_args(args)
    status = 0
    for path in ns.configs:
        try:
            cfg = TrainingConfig.from_yaml(path)
        except ConfigError as exc:
            print(f'error: {exc}', file=sys.stderr)
            status = 1
            continue
        print(f'{path}: ok (plan={cfg.plan}, vlm layers={cfg.language_model.num_hidden_layers}, '
              f'expert width={cfg.expert.hidden_size}, chunk={cfg.action.chunk_size})')
    return status


if __name__ == '__main__':
    sys.exit(main())
