# redteam: 3 host memory: a query straight through the interface with a 9-million-item parameter list, after a 2 MB statement the policy refuses unread
# command: exec --memory 1024
# command: exec --memory 1024 --host-memory 64
# db: demo
# expect: host_memory
# rss-mib: 1800
from componentize_py_types import Err
from wit_world.imports import host

try:
    host.db_query("SELECT 1 " + " " * 2_000_000, "[]", False)
    raise SystemExit("a 2 MB statement was accepted")
except Err as refused:
    assert refused.value.kind == "db_denied", refused.value
host.db_query("SELECT 1", "[" + "0," * 9_000_000 + "0]", False)
