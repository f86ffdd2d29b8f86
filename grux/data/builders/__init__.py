"""TFDS builders (array_record, no TensorFlow needed) for the raw datasets of ``shared/data``.

``BUILDERS`` maps each builder name to its class; :mod:`grux.data.datasets` is the API on top.
"""
from grux.data.builders.airline_passengers import AirlinePassengers
from grux.data.builders.common import (DataError, GruxBuilder, MissingSourceFileError,
                                      PreparedDataCorruptError, SourceChecksumError, SourceFile,
                                      SourceFileError)
from grux.data.builders.ett import Ett
from grux.data.builders.fsdd import Fsdd
from grux.data.builders.librispeech import Librispeech
from grux.data.builders.m4_hourly import M4Hourly
from grux.data.builders.multi30k import Multi30k
from grux.data.builders.polyphonic_music import PolyphonicMusic
from grux.data.builders.ptb import Ptb
from grux.data.builders.ptb_char import PtbChar
from grux.data.builders.tiny_shakespeare import TinyShakespeare
from grux.data.builders.weather import Weather

BUILDERS: dict[str, type[GruxBuilder]] = {cls.name: cls for cls in (
    AirlinePassengers, Ett, Fsdd, Librispeech, M4Hourly, Multi30k, PolyphonicMusic, Ptb,
    PtbChar, TinyShakespeare, Weather)}

__all__ = ["BUILDERS", "DataError", "GruxBuilder", "MissingSourceFileError",
           "PreparedDataCorruptError", "SourceChecksumError", "SourceFile", "SourceFileError",
           "AirlinePassengers", "Ett", "Fsdd", "Librispeech", "M4Hourly", "Multi30k",
           "PolyphonicMusic", "Ptb", "PtbChar", "TinyShakespeare", "Weather"]
