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

"""Generate scripted-expert demonstrations: one rosbag2 (mcap) per episode, in parallel, cached.

Episode i runs task tasks[i % len(tasks)] with seed seed_start + i and is written to
OUT/<task>_<seed:06d>/ with exactly the topics, types and stamps the sim node publishes live
(the episode loop is `sim.rollout.run_episode`'s). Episodes are independent, so they are spread
over worker processes (no ROS middleware involved). OUT/summary.json lists the recording
settings and every episode's outcome; it is the cache: a rerun with the same settings records
only the episodes not listed yet, and a folder recorded with other settings is refused.

`generate` is the one demonstration generator of the project: the default-checkpoint recipe
calls it with its own jobs (every object of a scene as the target, detours, settle ticks).
"""

import argparse
from dataclasses import asdict
from dataclasses import dataclass
import hashlib
import json
import multiprocessing
import os
import shutil
import sys

from spatialvla_ros.data.recorder import EpisodeRecorder
from spatialvla_ros.sim import messages as sim_msgs
from spatialvla_ros.sim.camera import CameraSpec
from spatialvla_ros.sim.camera import side_camera_spec
from spatialvla_ros.sim.constants import TASKS
from spatialvla_ros.sim.expert import PandaIK
from spatialvla_ros.sim.panda_env import PandaEnv
from spatialvla_ros.sim.rollout import run_episode
from spatialvla_ros.sim.rollout import T0_NS
from spatialvla_ros.tools.flags import add_camera_jitter_arguments
from spatialvla_ros.tools.flags import task_list
from tqdm import tqdm


@dataclass(frozen=True)
class DemoSettings:
    """How demonstrations are recorded; equal settings + seeds give equal bags (the cache key)."""

    width: int = 128                 # camera [px]
    height: int = 128
    fov_deg: float = 60.0            # camera vertical field of view [deg]
    renderer: str = 'tiny'
    rate_hz: float = 10.0            # control and camera rate
    cloud: bool = True               # record the PointCloud2
    detour: float = 0.0              # share of targeted reaches that start after a detour
    settle_ticks: int = 0            # ticks still recorded after success
    keep_failed: bool = False        # keep bags of failed episodes (outcome success=false)
    side_camera: bool = False        # also record the fixed side camera (same size and fov)
    # Camera mount per episode: up to this offset per axis [cm] and turn about each axis [deg]
    # from the nominal mount, drawn from the episode seed (`sim.camera.CameraSpec.jittered`)
    # and recorded on the mount topic, from which training takes each episode's own mount.
    camera_jitter_cm: float = 0.0
    camera_jitter_deg: float = 0.0

    def key(self):
        """Return the settings that differ from the defaults, as JSON types: the cache key.

        A field added later with a default that keeps today's recording leaves the key (and so
        every cached folder) valid.
        """
        defaults = asdict(DemoSettings())
        return json.loads(json.dumps({k: v for k, v in asdict(self).items()
                                      if v != defaults[k]}, sort_keys=True))

    def digest(self):
        """Return a short name for the key (folder names of cached demonstrations)."""
        return hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class DemoJob:
    """One episode: `task` on the scene of `seed`; `target` >= 0 picks the reach's object."""

    task: str
    seed: int
    target: int = -1

    @property
    def name(self):
        suffix = f'_{self.target}' if self.target >= 0 else ''
        return f'{self.task}_{self.seed:06d}{suffix}'


_worker = {}


def _init_worker(settings):
    # One simulator + IK solver per process, reused by its episodes (loading the Panda is slow).
    spec = CameraSpec(width=settings.width, height=settings.height, fov_deg=settings.fov_deg,
                      renderer=settings.renderer)
    side = side_camera_spec(spec) if settings.side_camera else None
    _worker['camera'] = spec
    _worker['env'] = PandaEnv(spec, side_camera_spec=side)
    _worker['ik'] = PandaIK()
    _worker['topics'] = sim_msgs.SimTopics(cloud=sim_msgs.SimTopics.cloud if settings.cloud
                                           else '')
    _worker['settings'] = settings


def _run_one(args):
    out, job = args
    settings, topics = _worker['settings'], _worker['topics']
    path = os.path.join(out, job.name)
    recorder = EpisodeRecorder(path, sim_msgs.topic_table(topics, settings.side_camera),
                               sim_msgs.typestore())
    _worker['env'].set_camera(_worker['camera'].jittered(
        job.seed, settings.camera_jitter_cm / 100.0, settings.camera_jitter_deg))
    try:
        task, success, steps = run_episode(
            _worker['env'], job.task, job.seed, T0_NS, settings.rate_hz, topics, _worker['ik'],
            sink=recorder.write, target=None if job.target < 0 else job.target,
            detour=settings.detour, settle_ticks=settings.settle_ticks)
    finally:
        recorder.close()
    if not success and not settings.keep_failed:
        shutil.rmtree(path)
    return {'bag': job.name, 'task': job.task, 'seed': job.seed, 'target': job.target,
            'success': bool(success), 'steps': steps, 'instruction': task.instruction,
            'kept': bool(success or settings.keep_failed)}


def _read_summary(out, settings):
    """Episodes already recorded into `out` with `settings` (by bag name)."""
    path = os.path.join(out, 'summary.json')
    if not os.path.exists(path):
        return {}
    with open(path, encoding='utf-8') as f:
        data = json.load(f)
    rows = data.get('episodes', [])
    defaults, key = asdict(DemoSettings()), settings.key()
    old = {k: v for k, v in (data.get('settings') or {}).items() if defaults.get(k) != v}
    if rows and old != key:
        diff = sorted(k for k in set(old) | set(key) if old.get(k) != key.get(k))
        raise ValueError(f'{out}: holds demonstrations recorded with other settings '
                         f'({", ".join(diff) or "unknown"} differ); choose another folder')
    return {r['bag']: r for r in rows}


def _write_summary(out, settings, rows):
    ordered = sorted(rows.values(), key=lambda r: (r['task'], r['seed'], r.get('target', -1)))
    with open(os.path.join(out, 'summary.json'), 'w', encoding='utf-8') as f:
        json.dump({'settings': asdict(settings), 'episodes': ordered}, f, indent=1)


def generate(out, jobs, settings, workers=1, progress=True):
    """Record `jobs` (DemoJob) into `out` with `settings`; returns the outcome row of each job.

    Jobs listed in out/summary.json are not recorded again (the cache); a folder of a job that
    is not listed there is the remainder of an interrupted run and is recorded anew.
    """
    os.makedirs(out, exist_ok=True)
    rows = _read_summary(out, settings)
    todo = [j for j in jobs if j.name not in rows
            or (rows[j.name]['kept'] and not os.path.isdir(os.path.join(out, j.name)))]
    for job in todo:
        shutil.rmtree(os.path.join(out, job.name), ignore_errors=True)
    if not todo:
        return [rows[j.name] for j in jobs]
    workers = max(1, min(workers, len(todo)))
    bar = tqdm(total=len(todo), unit='episode', desc='demonstrations', disable=not progress)
    pool = None
    if workers == 1:
        _init_worker(settings)
        outcomes = map(_run_one, [(out, j) for j in todo])
    else:
        pool = multiprocessing.get_context('spawn').Pool(workers, _init_worker, (settings,))
        outcomes = pool.imap_unordered(_run_one, [(out, j) for j in todo])
    try:
        for row in outcomes:
            rows[row['bag']] = row
            bar.update(1)
            bar.set_postfix(success=f'{sum(r["success"] for r in rows.values())}/{len(rows)}')
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
        _write_summary(out, settings, rows)
    return [rows[j.name] for j in jobs]


def _image_size(text):
    try:
        if 'x' in text:
            w, h = (int(v) for v in text.lower().split('x'))
        else:
            w = h = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'got {text!r}, expected N or WxH (pixels)') from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError(f'got {text!r}, expected at least 8x8 pixels')
    return w, h


def build_parser():
    parser = argparse.ArgumentParser(
        prog='generate_demos',
        description='Record scripted-expert episodes of the Panda simulator as rosbag2 (mcap) '
                    'bags, one directory per episode, using several processes. Episodes '
                    'already recorded into --out with the same settings are kept.')
    parser.add_argument('--out', required=True, help='output folder (created if missing)')
    parser.add_argument('--episodes', type=int, default=30, help='number of episodes (N)')
    parser.add_argument('--tasks', type=task_list, default=TASKS,
                        help='comma list of tasks, cycled over episodes (default: %(default)s)')
    parser.add_argument('--seed-start', type=int, default=0,
                        help='seed of the first episode; episode i uses seed-start + i')
    parser.add_argument('--workers', type=int, default=max(1, (os.cpu_count() or 2) - 1),
                        help='worker processes (default: cores - 1)')
    parser.add_argument('--image-size', type=_image_size, default=(128, 128),
                        help='camera image size, N or WxH pixels (default: 128)')
    parser.add_argument('--fov-deg', type=float, default=DemoSettings.fov_deg,
                        help='camera vertical field of view [deg] (default: %(default)s)')
    parser.add_argument('--rate', type=float, default=10.0,
                        help='control and camera rate [Hz] (default: 10)')
    parser.add_argument('--renderer', choices=('tiny', 'egl'), default='tiny',
                        help='pybullet renderer (egl falls back to tiny if not loadable)')
    parser.add_argument('--no-cloud', action='store_true', help='do not record the PointCloud2')
    parser.add_argument('--side-camera', action='store_true',
                        help='also record the fixed side camera (/side_camera/...: same size and '
                             'field of view as the main one)')
    add_camera_jitter_arguments(parser)
    parser.add_argument('--keep-failed', action='store_true',
                        help='keep bags of failed episodes (their outcome says success=false)')
    return parser


def main(args=None):
    ns = build_parser().parse_args(args)
    if ns.episodes < 1 or not ns.tasks:
        print(f'error: --episodes {ns.episodes} / --tasks {",".join(ns.tasks)!r}: expected at '
              'least one episode and one task', file=sys.stderr)
        return 2
    settings = DemoSettings(width=ns.image_size[0], height=ns.image_size[1], fov_deg=ns.fov_deg,
                            renderer=ns.renderer, rate_hz=ns.rate, cloud=not ns.no_cloud,
                            keep_failed=ns.keep_failed, side_camera=ns.side_camera,
                            camera_jitter_cm=ns.camera_jitter_cm,
                            camera_jitter_deg=ns.camera_jitter_deg)
    jobs = [DemoJob(ns.tasks[i % len(ns.tasks)], ns.seed_start + i) for i in range(ns.episodes)]
    try:
        results = generate(ns.out, jobs, settings, ns.workers)
    except ValueError as exc:
        print(f'error: --out {ns.out}: {exc}', file=sys.stderr)
        return 2
    for task in ns.tasks:
        rows = [r for r in results if r['task'] == task]
        if rows:
            ok = sum(r['success'] for r in rows)
            print(f'{task}: {ok}/{len(rows)} successful')
    return 0


__all__ = ['DemoJob', 'DemoSettings', 'build_parser', 'generate', 'main']

if __name__ == '__main__':
    sys.exit(main())
