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

"""Where large camera frames go over Fast DDS: delivery and latency per QoS, size and rate.

Two real processes per configuration: a publisher of an RGB-D pair (rgb8 colour + 16UC1 depth,
sensor_msgs/Image, one stamp) at a given size and rate, and a subscriber with a given QoS. The
publisher waits until the subscriber is matched, then sends `--seconds` worth of counted
frames and one more second of uncounted ones (a live stream never stops: later samples carry
the heartbeats that let a reliable reader repair the last counted ones); the subscriber counts
what arrives and the latency from the header stamp (wall clock, one machine) to the callback.
One table, one line per configuration.

Usage: python bench/dds_camera_qos.py [--seconds 2] [--sizes vga,hd] [--rates 15,30]
           [--depths 1,5,10] [--qos reliable/best_effort,reliable/reliable]
           [--transports LARGE_DATA] [--shm-segment-mb 0]
Each transport value is put in FASTDDS_BUILTIN_TRANSPORTS of both processes. With
--shm-segment-mb N > 0 both processes instead load a Fast DDS XML profile with a shared-memory
transport of an N MB segment (plus UDPv4), to test whether best-effort frames are lost there.
"""

import argparse
import array
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import rclpy
from rclpy.qos import HistoryPolicy
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image
from spatialvla_ros.core_types import ns_to_stamp
from spatialvla_ros.core_types import stamp_to_ns

SIZES = {'qvga': (320, 240), 'vga': (640, 480), 'hd': (1280, 720)}
RELIABILITY = {'best_effort': ReliabilityPolicy.BEST_EFFORT,
               'reliable': ReliabilityPolicy.RELIABLE}
TOPICS = ('color', 'depth')
SHM_PROFILE = """<?xml version="1.0" encoding="UTF-8" ?>
<dds xmlns="http://www.eprosima.com"><profiles>
  <transport_descriptors>
    <transport_descriptor><transport_id>shm</transport_id><type>SHM</type>
      <segment_size>{size}</segment_size></transport_descriptor>
    <transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="bench" is_default_profile="true"><rtps>
    <userTransports><transport_id>shm</transport_id><transport_id>udp</transport_id>
    </userTransports><useBuiltinTransports>false</useBuiltinTransports>
  </rtps></participant>
</profiles></dds>
"""


def _qos(reliability, depth):
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=RELIABILITY[reliability])


def _images(width, height):
    color, depth = Image(), Image()
    for msg, encoding, channels, itemsize in ((color, 'rgb8', 3, 1), (depth, '16UC1', 1, 2)):
        msg.width, msg.height, msg.encoding = width, height, encoding
        msg.step = width * channels * itemsize
        pixels = np.random.default_rng(0).integers(0, 255, msg.step * height, dtype=np.uint8)
        msg.data = array.array('B', pixels.tobytes())
    return color, depth


def publisher(ns):
    """Publish `frames` + 1 s of RGB-D pairs at `rate` once both topics are matched."""
    rclpy.init()
    node = rclpy.create_node('camera_qos_pub')
    qos = _qos(ns.pub_reliability, ns.depth)
    pubs = [node.create_publisher(Image, f'bench/{t}', qos) for t in TOPICS]
    color, depth = _images(*SIZES[ns.size])
    deadline = time.monotonic() + 30
    while any(p.get_subscription_count() == 0 for p in pubs) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)       # let the reliable readers' handshakes finish
    period, start = 1.0 / ns.rate, time.monotonic()
    for k in range(ns.frames + int(math.ceil(ns.rate))):
        delay = start + k * period - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamp = ns_to_stamp(time.time_ns())
        for pub, msg in zip(pubs, (color, depth)):
            msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
            msg.header.frame_id = str(k)
            pub.publish(msg)
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


def subscriber(ns):
    """Count frames and latencies until `frames` pairs arrived or the time is up; print JSON."""
    rclpy.init()
    node = rclpy.create_node('camera_qos_sub')
    got = {t: {} for t in TOPICS}

    def callback(topic):
        def on_image(msg):
            k = int(msg.header.frame_id)
            if k < ns.frames:    # the tail only keeps the stream going
                got[topic][k] = (time.time_ns() - stamp_to_ns(msg.header.stamp)) / 1e6
        return on_image

    qos = _qos(ns.reliability, ns.depth)
    for t in TOPICS:
        node.create_subscription(Image, f'bench/{t}', callback(t), qos)
    deadline = time.monotonic() + 15 + ns.frames / ns.rate
    while time.monotonic() < deadline and min(len(g) for g in got.values()) < ns.frames:
        rclpy.spin_once(node, timeout_sec=0.1)
        if os.path.exists(ns.done) and time.time() - os.path.getmtime(ns.done) > 1.0:
            break
    pairs = sorted(set(got['color']) & set(got['depth']))
    latency = [max(got['color'][k], got['depth'][k]) for k in pairs]
    print(json.dumps({'color': len(got['color']), 'depth': len(got['depth']),
                      'pairs': len(pairs), 'latency_ms': latency}))
    node.destroy_node()
    rclpy.shutdown()


def run_one(size, rate, frames, pub_rel, sub_rel, depth, transport, domain, shm_mb=0):
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), FASTDDS_BUILTIN_TRANSPORTS=transport,
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    common = ['--size', size, '--rate', str(rate), '--frames', str(frames),
              '--depth', str(depth)]
    with tempfile.TemporaryDirectory() as tmp:
        if shm_mb:
            del env['FASTDDS_BUILTIN_TRANSPORTS']
            env['FASTDDS_DEFAULT_PROFILES_FILE'] = os.path.join(tmp, 'profile.xml')
            with open(env['FASTDDS_DEFAULT_PROFILES_FILE'], 'w', encoding='utf-8') as f:
                f.write(SHM_PROFILE.format(size=int(shm_mb * 2**20)))
        done = os.path.join(tmp, 'done')
        sub = subprocess.Popen([sys.executable, __file__, '--role', 'sub', '--reliability',
                                sub_rel, '--done', done] + common, env=env,
                               stdout=subprocess.PIPE, text=True)
        pub = subprocess.run([sys.executable, __file__, '--role', 'pub', '--pub-reliability',
                              pub_rel] + common, env=env, timeout=120)
        open(done, 'w').close()
        out, _ = sub.communicate(timeout=60)
    if pub.returncode or sub.returncode:
        raise RuntimeError(f'{size} {rate} Hz {sub_rel} depth {depth}: a process failed')
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--role', choices=('pub', 'sub'), help=argparse.SUPPRESS)
    parser.add_argument('--size', default='vga', help=argparse.SUPPRESS)
    parser.add_argument('--rate', type=float, default=15.0, help=argparse.SUPPRESS)
    parser.add_argument('--frames', type=int, default=30, help=argparse.SUPPRESS)
    parser.add_argument('--depth', type=int, default=5, help=argparse.SUPPRESS)
    parser.add_argument('--reliability', default='reliable', help=argparse.SUPPRESS)
    parser.add_argument('--pub-reliability', default='reliable', help=argparse.SUPPRESS)
    parser.add_argument('--done', default='', help=argparse.SUPPRESS)
    parser.add_argument('--seconds', type=float, default=2.0,
                        help='frames sent per configuration, in seconds of the rate')
    parser.add_argument('--sizes', default='vga,hd', help=f'of {", ".join(SIZES)}')
    parser.add_argument('--rates', default='15,30', help='frame rates [Hz]')
    parser.add_argument('--depths', default='1,5,10', help='history depths (both ends)')
    parser.add_argument('--qos', default='reliable/best_effort,reliable/reliable',
                        help='publisher/subscriber reliability pairs')
    parser.add_argument('--transports', default='LARGE_DATA',
                        help='FASTDDS_BUILTIN_TRANSPORTS values to compare')
    parser.add_argument('--shm-segment-mb', type=float, default=0.0,
                        help='> 0: an XML profile with this shared-memory segment size instead')
    ns = parser.parse_args(argv)
    if ns.role == 'pub':
        return publisher(ns)
    if ns.role == 'sub':
        return subscriber(ns)
    domain = 100 + os.getpid() % 100
    print('| transport | size | rate [Hz] | QoS pub/sub | depth | colour | depth img | pairs '
          '| p50 [ms] | p95 [ms] |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    t0 = time.monotonic()
    transports = ([f'SHM {ns.shm_segment_mb:g} MB + UDPv4 (XML)'] if ns.shm_segment_mb
                  else ns.transports.split(','))
    for transport in transports:
        for size in ns.sizes.split(','):
            for rate in (float(r) for r in ns.rates.split(',')):
                frames = max(2, int(round(ns.seconds * rate)))
                for pair in ns.qos.split(','):
                    pub_rel, sub_rel = pair.split('/')
                    for depth in (int(d) for d in ns.depths.split(',')):
                        r = run_one(size, rate, frames, pub_rel, sub_rel, depth, transport,
                                    domain, ns.shm_segment_mb)
                        lat = np.asarray(r['latency_ms'])
                        p50, p95 = ((f'{np.percentile(lat, 50):.1f}',
                                     f'{np.percentile(lat, 95):.1f}') if lat.size else ('-', '-'))
                        w, h = SIZES[size]
                        print(f'| {transport} | {w}x{h} | {rate:g} | {pub_rel}/{sub_rel} '
                              f'| {depth} | {r["color"]}/{frames} | {r["depth"]}/{frames} '
                              f'| {r["pairs"]}/{frames} | {p50} | {p95} |', flush=True)
    print(f'\n{time.monotonic() - t0:.0f} s; one publisher and one subscriber process per line; '
          "latency: header stamp (wall clock) to the later of the pair's two callbacks")
    return 0


if __name__ == '__main__':
    sys.exit(main())
