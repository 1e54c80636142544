# redteam: 3 host memory: a 60 MB frame (under the results cap) of 60 million values
# command: exec --memory 1536
# command: exec --memory 1536 --host-memory 64
# db: none
# expect: host_memory
# rss-mib: 2600
from metaexec import result

result([None] * 60_000_000)
