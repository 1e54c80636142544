# redteam: 3 host memory: a result of millions of tiny values (8 million and a date)
# command: exec --memory 1536 --host-memory 64
# db: none
# expect: host_memory
# rss-mib: 1800
import datetime

from metaexec import result

# The date takes the encoder's slow path; the list makes it 8 million values.
result([datetime.date(2024, 1, 1)] + [0] * 8_000_000)
