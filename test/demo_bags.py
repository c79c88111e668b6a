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

"""Scripted-expert demonstration bags for the tests, recorded once per pytest session."""

import shutil
import subprocess
import sys


def generate_demos(base, episodes=3, size=32, tasks='reach', seed_start=0, extra=()):
    """Record simulator demos into <basetemp>/demos_* once per session (shared by files)."""
    out = base / f'demos_{tasks}_{episodes}x{size}_{seed_start}{"_".join(("",) + extra)}'
    if not (out / 'summary.json').exists():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, '-m', 'spatialvla_ros.tools.generate_demos', '--out',
                        str(out), '--episodes', str(episodes), '--image-size', str(size),
                        '--tasks', tasks, '--workers', '2', '--seed-start', str(seed_start),
                        '--no-cloud', *extra], check=True, capture_output=True, timeout=240)
    return sorted(str(p) for p in out.iterdir() if p.is_dir())
