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

"""Approximate-time synchronisation of several streams by header stamp (no message_filters).

One policy serves the live node and the offline bag dataset, so training samples and live
observations pair RGB, depth and camera info the same way (the public ROS 2 VLA bridges
take the latest message of each topic instead).

Policy (greedy, minimal latency): a set is emitted as soon as one message per key lies within
`slop` of each other (max stamp - min stamp <= slop). Among the sets the newest message can
complete, the one with the smallest spread wins (ties: the newer set). After a set is
emitted, every queued message not newer than the chosen one of its key is dropped, and a
later message of a key that is not newer than the last matched message of that key is
rejected (`SyncRejected`). Messages that can no longer be matched are pruned, assuming each
stream's stamps do not decrease.
"""

import bisect
from dataclasses import dataclass
import itertools

from spatialvla_ros.perception.conversions import MessageError


class SyncRejected(MessageError):
    """A message arrived with a stamp at or before the last matched message of its key."""

    def __init__(self, message):
        super().__init__('out_of_order', message)


@dataclass(frozen=True)
class MatchedSet:
    """One synchronised set.

    messages: key -> message; stamps: key -> stamp [ns]; stamp_ns: the reference stamp, the
    newest stamp of the set (the time at which all of it was available).
    """

    messages: dict
    stamps: dict
    stamp_ns: int

    @property
    def spread_ns(self):
        return max(self.stamps.values()) - min(self.stamps.values())


def _slop_ns(slop_s):
    if not slop_s >= 0:
        raise ValueError(f'slop_s: got {slop_s}, expected a value >= 0 [s]')
    return int(round(slop_s * 1e9))


class StampSynchronizer:
    """Online approximate-time synchroniser over named streams (see the module docstring).

    The queued items are whatever the caller adds: the live node adds decoded arrays (each
    message is parsed once, on arrival), the bag dataset message indices.

    Args:
        keys: names of the streams (e.g. 'front/color', 'front/depth', 'front/camera_info').
        slop_s: max stamp difference inside one set [s].
        queue_size: messages kept per key; the oldest is dropped beyond it.
    """

    def __init__(self, keys, slop_s, queue_size=10):
        self.keys = tuple(keys)
        if not self.keys or len(set(self.keys)) != len(self.keys):
            raise ValueError(f'keys: got {self.keys}, expected unique stream names')
        if queue_size < 1:
            raise ValueError(f'queue_size: got {queue_size}, expected >= 1')
        self.slop_ns = _slop_ns(slop_s)
        self.queue_size = int(queue_size)
        self._seq = itertools.count()
        self.reset()

    def reset(self):
        """Forget all queued messages and the last match (e.g. after a clock jump)."""
        # key -> sorted list of (stamp_ns, seq, msg); seq keeps arrival order among equal stamps
        self._queues = {k: [] for k in self.keys}
        self._last_matched = dict.fromkeys(self.keys)
        self._newest = dict.fromkeys(self.keys)
        self.num_matched = 0
        self.num_dropped = 0
        self.num_rejected = 0

    def add(self, key, stamp_ns, msg):
        """Queue a message; return the MatchedSet it completes, or None.

        Raises SyncRejected if the stamp is not newer than the last matched message of `key`,
        and KeyError for a key that is not one of `keys`.
        """
        if key not in self._queues:
            raise KeyError(f'key: got {key!r}, expected one of {list(self.keys)}')
        stamp_ns = int(stamp_ns)
        last = self._last_matched[key]
        if last is not None and stamp_ns <= last:
            self.num_rejected += 1
            raise SyncRejected(f'{key}: stamp {stamp_ns} ns is not newer than the last matched '
                               f'message of this stream ({last} ns); out of order or repeated')
        queue = self._queues[key]
        entry = (stamp_ns, next(self._seq), msg)
        bisect.insort(queue, entry, key=lambda e: e[:2])
        if self._newest[key] is None or stamp_ns > self._newest[key]:
            self._newest[key] = stamp_ns
        if len(queue) > self.queue_size:
            self.num_dropped += 1
            if queue.pop(0) is entry:
                return None  # older than a full queue of its own stream
        matched = self._match(key, entry)
        if matched is None:
            self._prune()
        return matched

    def _match(self, key, entry):
        """Best set containing `entry` (every valid set must: none existed before it came)."""
        others = [k for k in self.keys if k != key]
        if any(not self._queues[k] for k in others):
            return None
        stamp = entry[0]
        # The set's newest stamp `hi` is `stamp` or a queued stamp above it; for a given hi the
        # tightest choice is each key's newest message at or before hi.
        his = {stamp}
        his.update(e[0] for k in others for e in self._queues[k]
                   if stamp < e[0] <= stamp + self.slop_ns)
        best = None
        for hi in sorted(his):
            picks = {}
            for k in others:
                queue = self._queues[k]
                i = bisect.bisect_right(queue, hi, key=lambda e: e[0]) - 1
                if i < 0:
                    break
                picks[k] = i
            else:
                lo = min([stamp] + [self._queues[k][i][0] for k, i in picks.items()])
                spread = hi - lo
                if spread <= self.slop_ns and (best is None or spread <= best[0]):
                    best = (spread, picks)
        if best is None:
            return None
        picks = best[1]
        queue = self._queues[key]
        picks[key] = next(i for i, e in enumerate(queue) if e[1] == entry[1])
        chosen = {k: self._queues[k][i] for k, i in picks.items()}
        # Drop everything up to and including the chosen message of each key.
        for k, i in picks.items():
            self.num_dropped += i
            del self._queues[k][:i + 1]
            self._last_matched[k] = chosen[k][0]
        self.num_matched += 1
        stamps = {k: chosen[k][0] for k in self.keys}
        return MatchedSet(messages={k: chosen[k][2] for k in self.keys}, stamps=stamps,
                          stamp_ns=max(stamps.values()))

    def _prune(self):
        """Drop messages no future set can use: some other stream has moved past their slop."""
        for k in self.keys:
            queue = self._queues[k]
            keep = []
            for e in queue:
                dead = False
                for j in self.keys:
                    newest = self._newest[j]
                    if j == k or newest is None or newest <= e[0] + self.slop_ns:
                        continue
                    # Stream j is past e's window; e lives only if j has a partner queued.
                    other = self._queues[j]
                    i = bisect.bisect_left(other, e[0] - self.slop_ns, key=lambda f: f[0])
                    if i == len(other) or other[i][0] > e[0] + self.slop_ns:
                        dead = True
                        break
                if not dead:
                    keep.append(e)
            self.num_dropped += len(queue) - len(keep)
            self._queues[k] = keep


def stamp_order(streams):
    """Merge {key: [(stamp_ns, msg), ...]} into one list of (stamp_ns, key, msg).

    Sorted by stamp; ties by the key order of `streams`, then position in the stream. This is
    the order in which `synchronize_streams` is equivalent to the online synchroniser.
    """
    merged = []
    for rank, (key, items) in enumerate(streams.items()):
        for pos, (stamp, msg) in enumerate(items):
            merged.append((int(stamp), rank, pos, key, msg))
    merged.sort(key=lambda m: m[:3])
    return [(m[0], m[3], m[4]) for m in merged]


def synchronize_streams(streams, slop_s):
    """Offline: all matched sets of recorded streams {key: [(stamp_ns, msg), ...]}.

    Gives the same sets as feeding `stamp_order(streams)` to a StampSynchronizer (whatever
    its queue_size), computed directly: in stamp order the newest message always closes the
    set, and the other keys contribute their newest message since their last match.
    """
    slop_ns = _slop_ns(slop_s)
    keys = list(streams)
    latest = dict.fromkeys(keys)            # newest unmatched (stamp, msg) per key
    last_matched = dict.fromkeys(keys)
    sets = []
    for stamp, key, msg in stamp_order(streams):
        if last_matched[key] is not None and stamp <= last_matched[key]:
            continue  # the online synchroniser rejects it
        latest[key] = (stamp, msg)
        if any(latest[k] is None for k in keys):
            continue
        lo = min(latest[k][0] for k in keys)
        if stamp - lo > slop_ns:
            continue
        stamps = {k: latest[k][0] for k in keys}
        sets.append(MatchedSet(messages={k: latest[k][1] for k in keys}, stamps=stamps,
                               stamp_ns=stamp))
        last_matched = stamps
        latest = dict.fromkeys(keys)
    return sets


__all__ = ['MatchedSet', 'StampSynchronizer', 'SyncRejected', 'stamp_order',
           'synchronize_streams']
