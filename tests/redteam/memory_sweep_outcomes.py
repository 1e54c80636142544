# redteam: 3 host memory: every scenario keeps a large result, adding up past the budget
# command: sweep --grid x=0..399:1 --host-memory 128
# db: none
# expect: host_memory
# rss-mib: 1200
from metaexec import params, result

result({"blob": "x" * 1_000_000, "x": params["x"]})
