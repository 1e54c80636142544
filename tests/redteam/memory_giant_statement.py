# redteam: 3 host memory: a 200 MB statement straight through the interface, past what one call may hand the host
# command: exec --memory 2048
# command: exec --memory 2048 --host-memory 64
# db: demo
# expect: host_memory
# rss-mib: 2600
from wit_world.imports import host

host.db_query("SELECT 1 " + " " * 200_000_000, "[]", False)
