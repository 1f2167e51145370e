"""python -m bench: run the codec benchmarks and print the comparison table.

    python -m bench                 # every scenario and size (a few minutes)
    python -m bench --quick         # line1 and heavy at 1920x1080, fewer rounds
    python -m bench --json run.json # only print the table of an earlier run
    python -m bench --save run.json -- --bench-scenarios=heavy   # pytest options after --

Run it from the repository root.
"""

import argparse
import os
import subprocess
import sys
import tempfile

from . import report

HERE = os.path.dirname(os.path.abspath(__file__))
QUICK = ["--bench-scenarios=line1,heavy", "--bench-sizes=1920x1080", "--bench-frames=12",
         "--bench-cycles=1"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="line1 and heavy at 1920x1080 only, 12 frames, one pass")
    parser.add_argument("--json", metavar="FILE",
                        help="print the table of an existing --benchmark-json file, run nothing")
    parser.add_argument("--save", metavar="FILE", help="keep the benchmark JSON here")
    parser.add_argument("--timer", default="time.thread_time",
                        help="pytest-benchmark timer (default: CPU time of the benchmarking "
                             "thread, which other processes on the machine disturb least; "
                             "time.perf_counter for wall-clock)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest options, after --")
    args = parser.parse_args(argv)

    if args.json:
        found, _, timer = report.load(args.json)
        print(report.render(found, timer))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        path = args.save or os.path.join(tmp, "bench.json")
        cmd = [sys.executable, "-m", "pytest", HERE, "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={path}", f"--benchmark-timer={args.timer}",
               "--benchmark-sort=name", "--benchmark-columns=median,iqr,min,rounds",
               *(QUICK if args.quick else []), *args.pytest_args]
        print(" ".join(cmd), flush=True)
        code = subprocess.call(cmd, cwd=os.path.dirname(HERE))
        if not os.path.exists(path):
            return code or 1
        found, _, timer = report.load(path)
        print()
        print(report.render(found, timer))
        return code


if __name__ == "__main__":
    sys.exit(main())
