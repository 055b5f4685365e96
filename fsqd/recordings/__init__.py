"""Recorded IMU files: one reader per format, the writers, and one way to open any of them.

``open_recording(path, options)`` picks the reader by suffix: ``.npy``/``.npz``
(``arrays``), ``.fsqr`` (``fsqr``, the native format ``fsqd record`` writes), anything
else as CSV (``csvfile``, with pyarrow's parser as a fast path in ``csvarrow``). Every
reader is a ``Recording`` (``base``): columns resolved against the model card's
channels, timestamps in UNIX seconds, ``chunks()`` yielding ``SampleChunk``s with one-line
FILE:LINE errors. ``writers`` holds what ``fsqd record`` writes with.
"""

from fsqd.recordings.arrays import ArrayRecording
from fsqd.recordings.base import ReadOptions, Recording, iso_to_epoch
from fsqd.recordings.csvfile import CsvRecording
from fsqd.recordings.fsqr import SUFFIX, NativeRecording
from fsqd.recordings.open import open_recording
from fsqd.recordings.writers import CsvWriter, NativeWriter, recording_header

__all__ = [
    "SUFFIX",
    "ArrayRecording",
    "CsvRecording",
    "CsvWriter",
    "NativeRecording",
    "NativeWriter",
    "ReadOptions",
    "Recording",
    "iso_to_epoch",
    "open_recording",
    "recording_header",
]
