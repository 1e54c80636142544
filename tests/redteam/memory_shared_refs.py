# redteam: 3 host memory: a 410-byte frame whose shared references expand to 2**40 values
# command: exec
# command: exec --host-memory 64
# db: none
# expect: host_memory
# rss-mib: 1700
from metaexec import result

a = [0]
for _ in range(40):
    a = [a, a]
result(a)
