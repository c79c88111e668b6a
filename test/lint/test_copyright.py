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

"""Every Python file carries the project's Apache-2.0 header (ament_copyright is not on PyPI)."""

import pathlib

import pytest
from repo_paths import REPO_ROOT

REPO = pathlib.Path(REPO_ROOT)
HEADER = 'Licensed under the Apache License, Version 2.0'


@pytest.mark.copyright
@pytest.mark.linter
def test_copyright():
    files = [p for d in ('spatialvla_ros', 'test', 'bench', 'launch')
             for p in (REPO / d).rglob('*.py')]
    files.append(REPO / 'setup.py')
    missing = [str(p.relative_to(REPO)) for p in files
               if HEADER not in p.read_text(encoding='utf-8')[:1000]]
    assert not missing, 'Missing the license header: ' + ', '.join(missing)
