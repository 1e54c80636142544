"""The pure-Python micro benchmark, natively: DSCR of 10 properties with the guest
library's finance functions, `N` times; prints the loop's time in nanoseconds.

    python3 benches/native/dscr_loop.py N
"""

import sys
import time

sys.path.insert(0, "runtime/metaexec")
import finance  # noqa: E402

from dscr_rows import ROWS, dscr_loop  # noqa: E402

n = int(sys.argv[1])
start = time.perf_counter_ns()
for _ in range(n):
    dscr_loop(finance, ROWS)
print(time.perf_counter_ns() - start)
