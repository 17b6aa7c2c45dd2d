"""The script `make convert` runs: `tfyolo convert` with the project's defaults filled in.

All logic lives in `tfyolo.cli.convert` / `tfyolo.quantization`; this file only supplies defaults, so
`python converters/convert.py --model M --out D --recipe int8` is the same as `tfyolo convert ...`.
"""

import sys

from tfyolo.cli.convert import convert_command
from tfyolo.cli.quiet import silence_native_logs

if __name__ == "__main__":
    silence_native_logs()
    convert_command(prog_name="converters/convert.py", args=sys.argv[1:])
