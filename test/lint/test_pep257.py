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

import os

from ament_pep257.main import main
import pytest
from repo_paths import REPO_ROOT

REPO = REPO_ROOT
PATHS = [os.path.join(REPO, p) for p in ('spatialvla_ros', 'test', 'bench', 'launch', 'setup.py')
         if os.path.exists(os.path.join(REPO, p))]


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    # Google-style docstrings (Args:/Returns:), as STYLE.md asks; missing docstrings allowed
    # as in ament's own convention; the summary may start on the first or second line.
    rc = main(argv=['--convention', 'google', '--add-ignore', 'D100', 'D101', 'D102', 'D103',
                    'D104', 'D105', 'D106', 'D107', 'D212', '--'] + PATHS)
    assert rc == 0, 'Found docstring style errors'
