"""The IMU simulator: labelled 9-axis samples from a moving animal, and their CSV.

``simulator`` makes the samples (continuous-time physics, seeded noise, streaming
reads equal one batch read); ``csvout`` writes them as the CSV ``fsqd replay`` reads.
The emulated chips (``fsqd.imu.emulated``) and ``fsqd simulate`` are fed from here;
the drivers, the stream stages and the recorded-file formats never import it.
"""

from fsqd.sim.csvout import csv_header, csv_rows, stream_csv, write_csv
from fsqd.sim.simulator import LabelledSamples, SimConfig, Simulator, simulate

__all__ = [
    "LabelledSamples",
    "SimConfig",
    "Simulator",
    "csv_header",
    "csv_rows",
    "simulate",
    "stream_csv",
    "write_csv",
]
