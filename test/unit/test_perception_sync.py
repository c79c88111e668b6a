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

"""Approximate-time synchronisation: slop, drops, out-of-order, online == offline."""

import numpy as np
import pytest

from spatialvla_ros.perception.sync import stamp_order
from spatialvla_ros.perception.sync import StampSynchronizer
from spatialvla_ros.perception.sync import synchronize_streams
from spatialvla_ros.perception.sync import SyncRejected

MS = 1_000_000


def test_match_within_slop_and_reference_stamp():
    sync = StampSynchronizer(['color', 'depth'], slop_s=0.010)
    assert sync.add('color', 100 * MS, 'c0') is None
    matched = sync.add('depth', 105 * MS, 'd0')
    assert matched.messages == {'color': 'c0', 'depth': 'd0'}
    assert matched.stamps == {'color': 100 * MS, 'depth': 105 * MS}
    assert matched.stamp_ns == 105 * MS and matched.spread_ns == 5 * MS
    assert sync.num_matched == 1


def test_no_match_beyond_slop_and_stale_message_dropped():
    sync = StampSynchronizer(['color', 'depth'], slop_s=0.010)
    assert sync.add('color', 100 * MS, 'c0') is None
    assert sync.add('depth', 130 * MS, 'd0') is None      # 30 ms apart: no set
    assert sync.num_dropped == 1                          # c0 can never match any more
    matched = sync.add('color', 128 * MS, 'c1')
    assert matched.messages == {'color': 'c1', 'depth': 'd0'}


def test_smallest_spread_wins_and_older_ones_are_dropped():
    sync = StampSynchronizer(['color', 'depth'], slop_s=0.020)
    sync.add('depth', 100 * MS, 'd0')
    sync.add('depth', 110 * MS, 'd1')
    sync.add('depth', 125 * MS, 'd2')
    matched = sync.add('color', 108 * MS, 'c0')           # d1 (2 ms) beats d0 (8) and d2 (17)
    assert matched.messages == {'color': 'c0', 'depth': 'd1'}
    assert sync.num_dropped == 1                          # d0, older than the chosen d1
    assert sync.add('color', 124 * MS, 'c1').messages['depth'] == 'd2'


def test_equal_spread_prefers_the_newer_set():
    sync = StampSynchronizer(['color', 'depth'], slop_s=0.020)
    sync.add('depth', 100 * MS, 'd0')
    sync.add('depth', 110 * MS, 'd1')
    assert sync.add('color', 105 * MS, 'c0').messages['depth'] == 'd1'


def test_exact_slop_boundary_is_inclusive():
    sync = StampSynchronizer(['a', 'b'], slop_s=0.01)
    sync.add('a', 0, 'a0')
    assert sync.add('b', 10 * MS, 'b0') is not None


def test_out_of_order_and_repeated_stamps_are_rejected():
    sync = StampSynchronizer(['color', 'depth'], slop_s=0.010)
    sync.add('color', 100 * MS, 'c0')
    sync.add('depth', 104 * MS, 'd0')
    with pytest.raises(SyncRejected, match='color: stamp 90000000 ns is not newer'):
        sync.add('color', 90 * MS, 'old')
    with pytest.raises(SyncRejected, match='depth'):
        sync.add('depth', 104 * MS, 'again')
    assert sync.num_rejected == 2
    assert sync.add('color', 102 * MS, 'c1') is None      # newer than its own last match: ok
    sync.reset()
    sync.add('color', 90 * MS, 'c2')                      # after a clock jump + reset
    assert sync.add('depth', 91 * MS, 'd2').messages == {'color': 'c2', 'depth': 'd2'}


def test_queue_size_bounds_each_stream():
    sync = StampSynchronizer(['color', 'depth', 'info'], slop_s=1.0, queue_size=3)
    for i in range(5):
        sync.add('color', i * MS, f'c{i}')
    assert sync.num_dropped == 2
    sync.add('info', 4 * MS, 'i')
    assert sync.add('depth', 4 * MS, 'd').messages['color'] == 'c4'


def test_unknown_key_and_bad_arguments():
    sync = StampSynchronizer(['a', 'b'], slop_s=0.0)
    with pytest.raises(KeyError, match="'c'"):
        sync.add('c', 0, None)
    with pytest.raises(ValueError, match='slop_s'):
        StampSynchronizer(['a'], slop_s=-1)
    with pytest.raises(ValueError, match='keys'):
        StampSynchronizer(['a', 'a'], slop_s=0.1)


def _streams(seed):
    """Three jittered camera-like streams with gaps and duplicate stamps."""
    rng = np.random.default_rng(seed)
    streams = {}
    for key, period_ms in (('color', 33.3), ('depth', 33.3), ('info', 66.6)):
        t = np.arange(0, 3000, period_ms) + rng.uniform(0, 40)
        t = t + rng.normal(0, 6, t.size)                  # stamp jitter [ms]
        t = t[rng.random(t.size) > 0.15]                  # dropped frames
        t = np.round(np.sort(t)).astype(np.int64) * MS
        t[rng.random(t.size) < 0.05] = t[0]               # a few repeated stamps
        t.sort()
        streams[key] = [(int(s), f'{key}{i}') for i, s in enumerate(t)]
    return streams


def _summary(sets):
    return [(tuple(sorted(s.messages.items())), tuple(sorted(s.stamps.items())), s.stamp_ns)
            for s in sets]


@pytest.mark.parametrize('seed', range(6))
@pytest.mark.parametrize('slop_s', [0.0, 0.005, 0.015, 0.05])
def test_offline_equals_online_in_stamp_order(seed, slop_s):
    streams = _streams(seed)
    offline = synchronize_streams(streams, slop_s)
    for queue_size in (1, 5, 50):
        sync = StampSynchronizer(list(streams), slop_s, queue_size=queue_size)
        online = []
        for stamp, key, msg in stamp_order(streams):
            try:
                matched = sync.add(key, stamp, msg)
            except SyncRejected:
                continue
            if matched is not None:
                online.append(matched)
        assert _summary(online) == _summary(offline)
    if slop_s >= 0.015:
        assert len(offline) > 10                          # the comparison is not vacuous
    for s in offline:
        assert s.spread_ns <= slop_s * 1e9
    # Every set is strictly newer than the previous one, stream by stream.
    for prev, cur in zip(offline, offline[1:]):
        assert all(cur.stamps[k] > prev.stamps[k] for k in streams)
