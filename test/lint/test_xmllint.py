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

"""package.xml files are well-formed format-3 manifests (ament_xmllint is not on PyPI)."""

import pathlib
import xml.etree.ElementTree as ET

import pytest
from repo_paths import REPO_ROOT

REPO = pathlib.Path(REPO_ROOT)


@pytest.mark.linter
@pytest.mark.xmllint
@pytest.mark.parametrize('path', ['package.xml', 'interfaces/package.xml',
                                  'interfaces/tf2_msgs/package.xml'])
def test_package_xml(path):
    root = ET.parse(REPO / path).getroot()
    assert root.tag == 'package' and root.get('format') == '3', f'{path}: expected format="3"'
    for tag in ('name', 'version', 'description', 'maintainer', 'license'):
        assert root.find(tag) is not None and root.find(tag).text, f'{path}: missing <{tag}>'
    build_type = root.find('export/build_type')
    expected = 'ament_python' if path == 'package.xml' else 'ament_cmake'
    assert build_type is not None and build_type.text == expected, f'{path}: build_type'
