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

"""LeRobot v3 datasets on local disk, written and read with pyarrow and PyAV (ROS-free).

LeRobot itself does not install next to this project's pinned stack (see the report of
issue 15: Python >= 3.12 for 0.5+, torch < 2.11 for 0.4.x), so this module implements the
documented v3.0 layout, the one LeRobot 0.4+ writes:

    meta/info.json                      codebase_version "v3.0", fps, features, path templates
    meta/stats.json                     per-feature min / max / mean / std / count
    meta/tasks.parquet                  task_index + the task string (the pandas index)
    meta/episodes/chunk-000/file-000.parquet   one row per episode: length, tasks, the
                                        global row range (dataset_from_index / _to_index), the
                                        data file, and per video key its file and time span
    data/chunk-CCC/file-FFF.parquet     one row per frame, many episodes per file
    videos/<key>/chunk-CCC/file-FFF.mp4 one stream per camera, episodes one after the other

A frame's video image is the one shown at `from_timestamp + timestamp` of its episode's file.
Vector features are fixed-size float lists, 2-D ones (depth) nested lists tagged as HF
`datasets` Array2D (what LeRobot itself writes), so `LeRobotDataset` hands them out as
(H, W) tensors. Depth is stored exactly as float32 metres in the data parquet, not in a video
(a lossy codec would change it); a LeRobot user reads `item['observation.depth.<camera>']`.
"""

import dataclasses
import fractions
import json
import os

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = 'v3.0'
INFO_PATH = 'meta/info.json'
STATS_PATH = 'meta/stats.json'
TASKS_PATH = 'meta/tasks.parquet'
EPISODES_PATH = 'meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
CHUNKS_SIZE = 1000           # files per chunk directory
DATA_FILE_MB = 100           # a data / video file is closed at an episode end past this size
VIDEO_FILE_MB = 200
DEFAULT_FEATURES = {
    'timestamp': {'dtype': 'float32', 'shape': [1], 'names': None},
    'frame_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'episode_index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'index': {'dtype': 'int64', 'shape': [1], 'names': None},
    'task_index': {'dtype': 'int64', 'shape': [1], 'names': None},
}
_TASKS_PANDAS = {
    'index_columns': ['task'],
    'column_indexes': [{'name': None, 'field_name': None, 'pandas_type': 'unicode',
                        'numpy_type': 'object', 'metadata': {'encoding': 'UTF-8'}}],
    'columns': [{'name': 'task_index', 'field_name': 'task_index', 'pandas_type': 'int64',
                 'numpy_type': 'int64', 'metadata': None},
                {'name': 'task', 'field_name': 'task', 'pandas_type': 'unicode',
                 'numpy_type': 'object', 'metadata': None}],
    'attributes': {}, 'creator': {'library': 'pyarrow', 'version': pa.__version__},
    'pandas_version': '2.2.3'}
_INFO_KEYS = ('codebase_version', 'fps', 'features', 'data_path', 'total_episodes',
              'total_frames')
_EPISODE_KEYS = ('episode_index', 'length', 'data/chunk_index', 'data/file_index',
                 'dataset_from_index', 'dataset_to_index')


class LeRobotFormatError(ValueError):
    """A LeRobot dataset is missing, of another layout version, or lacks a file or key."""


def is_lerobot_dataset(path):
    return os.path.isfile(os.path.join(os.fspath(path), INFO_PATH))


@dataclasses.dataclass(frozen=True)
class VideoOptions:
    """How camera images are encoded.

    Default: H.264 lossless (crf 0) in YUV 4:4:4, so the only loss is the RGB <-> YUV rounding
    (at most 2-3 levels per channel; 128 px sim images: mean 0.5, 1.9 KB a frame against 48 KB
    raw), and any FFmpeg-based decoder (PyAV, torchcodec: LeRobot's) reads it. One key frame
    every `gop` frames keeps random access cheap, as LeRobot's own default (g=2) does.
    LeRobot's own default for comparison: libsvtav1, yuv420p, crf 30 (mean 2.4, max 183).
    """

    codec: str = 'libx264'
    pix_fmt: str = 'yuv444p'
    crf: int = 0
    gop: int = 2


def _chunk_file(counter):
    return divmod(counter, CHUNKS_SIZE)


def _vector_array(values, dtype):
    """(T, n) -> fixed_size_list<dtype>[n]; (T,) -> plain column."""
    values = np.ascontiguousarray(values, dtype=dtype)
    if values.ndim == 1:
        return pa.array(values)
    flat = pa.array(values.reshape(-1))
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def _matrix_array(values, dtype):
    """(T, H, W) -> list<list<dtype>> (the storage of HF datasets' Array2D)."""
    values = np.ascontiguousarray(values, dtype=dtype)
    t, h, w = values.shape
    rows = pa.ListArray.from_arrays(pa.array(np.arange(0, t * h * w + 1, w, dtype=np.int32)),
                                    pa.array(values.reshape(-1)))
    return pa.ListArray.from_arrays(pa.array(np.arange(0, t * h + 1, h, dtype=np.int32)), rows)


def _array2d_field(name, array, shape, dtype):
    meta = {b'ARROW:extension:name': b'datasets.features.features.Array2DExtensionType',
            b'ARROW:extension:metadata': json.dumps([list(shape), dtype]).encode('utf-8')}
    return pa.field(name, array.type, metadata=meta)


def _column_to_numpy(column, shape, where):
    """Turn a parquet column back into (T, *shape) numpy (fixed or variable nested lists)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    depth = 0
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type) \
            or pa.types.is_large_list(array.type):
        array = array.flatten()
        depth += 1
    values = array.to_numpy(zero_copy_only=False)
    shape = [] if list(shape) == [1] and depth == 0 else list(shape)
    try:
        return values.reshape([-1] + shape)
    except ValueError:
        raise LeRobotFormatError(f'{where}: got {values.size} values, expected a multiple of '
                                 f'the feature shape {shape}') from None


class LeRobotWriter:
    """Write episodes into a new LeRobot v3 dataset directory; use as a context manager.

    Args:
        root: dataset directory (must not exist, or be empty).
        fps: frame rate (int, as LeRobot stores it); frame i of an episode has timestamp i / fps.
        features: {key: {'dtype': 'video' | 'float32' | 'uint16' | ..., 'shape': [...],
            'names': [...] | None, 'info': {...} (optional, kept in info.json)}} without the
            default columns (timestamp, frame_index, episode_index, index, task_index).
        robot_type: free text kept in info.json.
        video: VideoOptions of the 'video' features.
    """

    def __init__(self, root, fps, features, robot_type=None, video=VideoOptions()):
        self.root = os.path.abspath(os.fspath(root))
        if os.path.exists(self.root) and os.listdir(self.root):
            raise LeRobotFormatError(f'{self.root}: already exists and is not empty, expected a '
                                     'new dataset directory')
        if int(fps) != fps or fps <= 0:
            raise ValueError(f'fps: got {fps}, expected a positive integer')
        self.fps = int(fps)
        self.video = video
        self.features = {k: dict(v) for k, v in features.items()}
        for key, ft in self.features.items():
            if key in DEFAULT_FEATURES:
                raise ValueError(f'features: {key} is a default column, expected other keys')
            ft['shape'] = [int(s) for s in ft['shape']]
            ft.setdefault('names', None)
        self.video_keys = [k for k, f in self.features.items() if f['dtype'] == 'video']
        self.robot_type = robot_type
        self.tasks = {}
        self.episodes = []
        self.total_frames = 0
        self._data = None            # [parquet writer, bytes written]
        self._videos = {}            # key -> [container, stream, path, frames in the file]
        self._file_counter = dict.fromkeys(['data'] + self.video_keys, 0)
        self._stats = {k: [] for k, f in self.features.items()
                       if f['dtype'] != 'video' and len(f['shape']) == 1}
        os.makedirs(self.root, exist_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc):
        self.close()

    def add_episode(self, frames, tasks):
        """Append one episode.

        Args:
            frames: {feature key: array (T, *shape)}; video features uint8 (T, H, W, 3) RGB.
            tasks: the episode's task string, or one string per frame.
        """
        missing = sorted(set(self.features) - set(frames))
        extra = sorted(set(frames) - set(self.features))
        if missing or extra:
            raise ValueError(f'episode {len(self.episodes)}: features missing {missing}, '
                             f'unknown {extra}; expected exactly {sorted(self.features)}')
        length = {len(v) for v in frames.values()}
        if len(length) != 1 or 0 in length:
            raise ValueError(f'episode {len(self.episodes)}: got frame counts {sorted(length)}, '
                             'expected one non-zero count for every feature')
        length = length.pop()
        tasks = [tasks] * length if isinstance(tasks, str) else list(tasks)
        if len(tasks) != length or not all(isinstance(t, str) and t for t in tasks):
            raise ValueError(f'episode {len(self.episodes)}: tasks: expected one non-empty '
                             f'string or {length} of them')
        for task in tasks:
            self.tasks.setdefault(task, len(self.tasks))
        index = len(self.episodes)
        row = {'episode_index': index, 'tasks': list(dict.fromkeys(tasks)), 'length': length,
               'dataset_from_index': self.total_frames,
               'dataset_to_index': self.total_frames + length}
        row.update(self._write_data(frames, tasks, index, length))
        for key in self.video_keys:
            row.update(self._write_video(key, frames[key]))
        row['meta/episodes/chunk_index'], row['meta/episodes/file_index'] = 0, 0
        self.episodes.append(row)
        self.total_frames += length
        for key in self._stats:
            self._stats[key].append(np.asarray(frames[key], dtype=np.float64))

    def _write_data(self, frames, tasks, episode, length):
        if self._data is not None and self._data[1] >= DATA_FILE_MB * 2 ** 20:
            self._data[0].close()
            self._data = None
            self._file_counter['data'] += 1
        columns, fields = [], []
        for key, ft in self.features.items():
            if ft['dtype'] == 'video':
                continue
            value = np.asarray(frames[key])
            scalar = ft['shape'] == [1] and value.ndim == 1
            if list(value.shape[1:]) != ft['shape'] and not scalar:
                raise ValueError(f'episode {episode}: {key}: got shape {value.shape[1:]}, '
                                 f'expected {ft["shape"]}')
            if len(ft['shape']) == 2:
                array = _matrix_array(value, ft['dtype'])
                fields.append(_array2d_field(key, array, ft['shape'], ft['dtype']))
            else:
                array = _vector_array(value.reshape(length, -1) if ft['shape'] != [1]
                                      else value.reshape(length), ft['dtype'])
                fields.append(pa.field(key, array.type))
            columns.append(array)
        start = self.total_frames
        defaults = {
            'timestamp': np.arange(length, dtype=np.float32) / np.float32(self.fps),
            'frame_index': np.arange(length, dtype=np.int64),
            'episode_index': np.full(length, episode, dtype=np.int64),
            'index': np.arange(start, start + length, dtype=np.int64),
            'task_index': np.asarray([self.tasks[t] for t in tasks], dtype=np.int64)}
        for key, value in defaults.items():
            columns.append(pa.array(value))
            fields.append(pa.field(key, columns[-1].type))
        table = pa.Table.from_arrays(columns, schema=pa.schema(fields))
        if self._data is None:
            chunk, file = _chunk_file(self._file_counter['data'])
            path = os.path.join(self.root, DATA_PATH.format(chunk_index=chunk, file_index=file))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._data = [pq.ParquetWriter(path, table.schema, compression='snappy'), 0]
        self._data[0].write_table(table)
        self._data[1] += table.nbytes
        chunk, file = _chunk_file(self._file_counter['data'])
        return {'data/chunk_index': chunk, 'data/file_index': file}

    def _open_video(self, key, height, width):
        chunk, file = _chunk_file(self._file_counter[key])
        path = os.path.join(self.root, VIDEO_PATH.format(video_key=key, chunk_index=chunk,
                                                         file_index=file))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        container = av.open(path, mode='w')
        stream = container.add_stream(self.video.codec, rate=self.fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = self.video.pix_fmt
        stream.time_base = fractions.Fraction(1, self.fps)
        stream.options = {'crf': str(self.video.crf), 'g': str(self.video.gop)}
        return [container, stream, path, 0]

    def _close_video(self, key):
        container, stream = self._videos[key][:2]
        for packet in stream.encode():
            container.mux(packet)
        container.close()
        del self._videos[key]

    def _write_video(self, key, images):
        images = np.asarray(images)
        shape = self.features[key]['shape']
        if images.dtype != np.uint8 or list(images.shape[1:]) != shape:
            raise ValueError(f'episode {len(self.episodes)}: {key}: got {images.dtype} '
                             f'{list(images.shape[1:])}, expected uint8 {shape} (H, W, 3) RGB')
        state = self._videos.get(key)
        if state is not None and os.path.getsize(state[2]) >= VIDEO_FILE_MB * 2 ** 20:
            self._close_video(key)
            self._file_counter[key] += 1
            state = None
        if state is None:
            state = self._videos[key] = self._open_video(key, shape[0], shape[1])
        container, stream, _, first = state
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            frame.pts = first + i
            for packet in stream.encode(frame):
                container.mux(packet)
        state[3] = first + len(images)
        chunk, file = _chunk_file(self._file_counter[key])
        return {f'videos/{key}/chunk_index': chunk, f'videos/{key}/file_index': file,
                f'videos/{key}/from_timestamp': first / self.fps,
                f'videos/{key}/to_timestamp': (first + len(images)) / self.fps}

    def _feature_stats(self):
        stats = {}
        for key, parts in self._stats.items():
            if not parts:
                continue
            values = np.concatenate(parts).reshape(self.total_frames, -1)
            stats[key] = {'min': values.min(0).tolist(), 'max': values.max(0).tolist(),
                          'mean': values.mean(0).tolist(), 'std': values.std(0).tolist(),
                          'count': [int(values.shape[0])]}
        return stats

    def close(self):
        """Finish the files and write meta/ (info, stats, tasks, episodes)."""
        if self.features is None:
            return
        if self._data is not None:
            self._data[0].close()
            self._data = None
        for key in list(self._videos):
            self._close_video(key)
        os.makedirs(os.path.join(self.root, 'meta'), exist_ok=True)
        tasks = sorted(self.tasks, key=self.tasks.get)
        table = pa.table({'task_index': pa.array(range(len(tasks)), pa.int64()),
                          'task': pa.array(tasks, pa.large_string())})
        # The pandas index of LeRobot's tasks DataFrame (it looks tasks up by string).
        pq.write_table(table.replace_schema_metadata({b'pandas': json.dumps(_TASKS_PANDAS)}),
                       os.path.join(self.root, TASKS_PATH))
        if self.episodes:
            path = os.path.join(self.root, EPISODES_PATH.format(chunk_index=0, file_index=0))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            columns = {k: [row[k] for row in self.episodes] for k in self.episodes[0]}
            pq.write_table(pa.table(columns), path)
        features = dict(self.features)
        for key in self.video_keys:
            h, w, c = features[key]['shape']
            features[key]['names'] = features[key]['names'] or ['height', 'width', 'channels']
            features[key]['info'] = {
                'video.height': h, 'video.width': w, 'video.codec': self.video.codec.replace(
                    'libx264', 'h264'), 'video.pix_fmt': self.video.pix_fmt,
                'video.is_depth_map': False, 'video.fps': self.fps, 'video.channels': c,
                'has_audio': False, **features[key].get('info', {})}
        info = {
            'codebase_version': CODEBASE_VERSION, 'robot_type': self.robot_type,
            'total_episodes': len(self.episodes), 'total_frames': self.total_frames,
            'total_tasks': len(tasks), 'chunks_size': CHUNKS_SIZE,
            'data_files_size_in_mb': DATA_FILE_MB, 'video_files_size_in_mb': VIDEO_FILE_MB,
            'fps': self.fps, 'splits': {'train': f'0:{len(self.episodes)}'},
            'data_path': DATA_PATH, 'video_path': VIDEO_PATH if self.video_keys else None,
            'features': {**features, **DEFAULT_FEATURES}}
        with open(os.path.join(self.root, INFO_PATH), 'w', encoding='utf-8') as f:
            json.dump(info, f, indent=4)
        with open(os.path.join(self.root, STATS_PATH), 'w', encoding='utf-8') as f:
            json.dump(self._feature_stats(), f, indent=4)
        self.features = None


class LeRobotReader:
    """A local LeRobot v3 dataset opened for reading (meta loaded, data read per episode).

    Raises:
        LeRobotFormatError naming the file and key when the layout is not v3 or a file / key
        is missing.
    """

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        info_path = os.path.join(self.root, INFO_PATH)
        if not os.path.isfile(info_path):
            raise LeRobotFormatError(f'{info_path}: not found (expected a LeRobot v3 dataset '
                                     'directory with meta/info.json)')
        try:
            with open(info_path, encoding='utf-8') as f:
                self.info = json.load(f)
        except ValueError as exc:
            raise LeRobotFormatError(f'{info_path}: not JSON ({exc})') from None
        for key in _INFO_KEYS:
            if key not in self.info:
                raise LeRobotFormatError(f'{info_path}: key {key!r} missing (a LeRobot v3 '
                                         'info.json has ' + ', '.join(_INFO_KEYS) + ')')
        version = str(self.info['codebase_version'])
        if not version.startswith('v3.'):
            raise LeRobotFormatError(
                f"{info_path}: key 'codebase_version': got {version!r}, expected 'v3.x' (convert "
                "older datasets with LeRobot's convert_dataset_v21_to_v30 first)")
        self.fps = self.info['fps']
        self.features = self.info['features']
        self.video_keys = [k for k, f in self.features.items() if f.get('dtype') == 'video']
        self.tasks = self._load_tasks()
        self.episodes = self._load_episodes()
        self._table = (None, None)

    def _path(self, relative):
        return os.path.join(self.root, relative)

    def _read(self, relative, what):
        path = self._path(relative)
        if not os.path.isfile(path):
            raise LeRobotFormatError(f'{path}: not found ({what})')
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise LeRobotFormatError(f'{path}: not a readable parquet file ({exc})') from None

    def _load_tasks(self):
        table = self._read(TASKS_PATH, 'the task strings')
        names = [n for n in ('task', '__index_level_0__') if n in table.column_names]
        if 'task_index' not in table.column_names or not names:
            raise LeRobotFormatError(f'{self._path(TASKS_PATH)}: columns {table.column_names}, '
                                     "expected 'task_index' and the task string ('task' or the "
                                     'pandas index)')
        return dict(zip(table['task_index'].to_pylist(), table[names[0]].to_pylist()))

    def _load_episodes(self):
        folder = self._path('meta/episodes')
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                       if f.endswith('.parquet'))
        if not files:
            raise LeRobotFormatError(f'{folder}: no episode parquet file (expected '
                                     f'{EPISODES_PATH.format(chunk_index=0, file_index=0)})')
        rows = []
        for path in files:
            table = self._read(os.path.relpath(path, self.root), 'episode metadata')
            wanted = list(_EPISODE_KEYS) + [f'videos/{k}/{s}' for k in self.video_keys
                                            for s in ('chunk_index', 'file_index',
                                                      'from_timestamp', 'to_timestamp')]
            for key in wanted:
                if key not in table.column_names:
                    raise LeRobotFormatError(f'{path}: column {key!r} missing (LeRobot v3 '
                                             'episode metadata)')
            columns = {k: table[k].to_pylist() for k in wanted + ['tasks']
                       if k in table.column_names}
            rows += [{k: v[i] for k, v in columns.items()} for i in range(table.num_rows)]
        rows.sort(key=lambda r: r['episode_index'])
        return rows

    def __len__(self):
        return len(self.episodes)

    def require(self, keys):
        """Raise naming info.json and each key the dataset lacks (and the keys it has)."""
        missing = [k for k in keys if k not in self.features]
        if missing:
            raise LeRobotFormatError(
                f'{self._path(INFO_PATH)}: configured key(s) {", ".join(missing)} not among '
                f'the features; the dataset has: {", ".join(sorted(self.features))}')

    def _data_table(self, row):
        relative = self.info['data_path'].format(chunk_index=row['data/chunk_index'],
                                                 file_index=row['data/file_index'])
        if self._table[0] != relative:
            self._table = (relative, self._read(relative, 'frame data'))
        return relative, self._table[1]

    def episode(self, e, keys):
        """Frames of episode number `e` (position in `episodes`).

        Returns:
            {key: (T, *shape) numpy} for each key in `keys` (video keys decoded to uint8 RGB)
            plus the default columns and 'task' (T,) str.
        """
        row = self.episodes[e]
        relative, table = self._data_table(row)
        where = self._path(relative)
        for key in ('index', 'timestamp', 'task_index'):
            if key not in table.column_names:
                raise LeRobotFormatError(f'{where}: column {key!r} missing')
        index = table['index'].to_numpy()
        rows = np.flatnonzero((index >= row['dataset_from_index'])
                              & (index < row['dataset_to_index']))
        if rows.size != row['length']:
            raise LeRobotFormatError(
                f'{where}: episode {row["episode_index"]} has {rows.size} rows with index in '
                f'[{row["dataset_from_index"]}, {row["dataset_to_index"]}), expected its '
                f'length {row["length"]}')
        part = table.take(pa.array(rows))
        out = {}
        for key in list(DEFAULT_FEATURES) + [k for k in keys if k not in self.video_keys]:
            if key not in part.column_names:
                raise LeRobotFormatError(f'{where}: column {key!r} missing (a feature of '
                                         f'{self._path(INFO_PATH)})')
            out[key] = _column_to_numpy(part[key], self.features[key]['shape'],
                                        f'{where}: {key}')
        out['task'] = np.asarray([self.tasks[int(t)] for t in out['task_index']])
        for key in keys:
            if key in self.video_keys:
                out[key] = self._decode_video(row, key, out['timestamp'])
        return out

    def _decode_video(self, row, key, timestamps):
        relative = self.info['video_path'].format(
            video_key=key, chunk_index=row[f'videos/{key}/chunk_index'],
            file_index=row[f'videos/{key}/file_index'])
        path = self._path(relative)
        if not os.path.isfile(path):
            raise LeRobotFormatError(f'{path}: not found (video of {key}, episode '
                                     f'{row["episode_index"]})')
        start = float(row[f'videos/{key}/from_timestamp'])
        wanted = start + np.asarray(timestamps, dtype=np.float64)
        tolerance = 0.5 / self.fps
        frames, times = [], []
        with av.open(path) as container:
            stream = container.streams.video[0]
            container.seek(int(start / stream.time_base), stream=stream, backward=True,
                           any_frame=False)
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base)
                if t < wanted[0] - tolerance:
                    continue
                if t > wanted[-1] + tolerance:
                    break
                times.append(t)
                frames.append(frame.to_ndarray(format='rgb24'))
        times = np.asarray(times)
        out = []
        for t in wanted:
            i = int(np.argmin(np.abs(times - t))) if times.size else -1
            if i < 0 or abs(times[i] - t) > tolerance:
                raise LeRobotFormatError(f'{path}: no frame at {t:.4f} s (episode '
                                         f'{row["episode_index"]}, {key})')
            out.append(frames[i])
        return np.stack(out)


__all__ = ['CODEBASE_VERSION', 'LeRobotFormatError', 'LeRobotReader', 'LeRobotWriter',
           'VideoOptions', 'is_lerobot_dataset']
