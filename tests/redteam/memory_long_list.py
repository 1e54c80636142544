# redteam: 3 host memory: a 60 MB result (under the results cap) of 30 million values
# command: exec --memory 1536
# command: exec --memory 1536 --host-memory 64
# db: none
# expect: host_memory
# rss-mib: 2600
from metaexec import result

result([0] * 30_000_000)
