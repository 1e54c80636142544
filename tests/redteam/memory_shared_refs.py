# redteam: 3 host memory: a value whose shared references expand to 2**40 items (the expansion happens in the guest's encoder, under the guest's own memory cap; the host never sees more than the text)
# command: exec --timeout 5
# command: exec --timeout 5 --host-memory 64
# db: none
# expect: timeout
# seconds: 20
# rss-mib: 1700
from metaexec import result

a = [0]
for _ in range(40):
    a = [a, a]
result(a)
