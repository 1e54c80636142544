# redteam: 3 host memory: database requests sent without reading the replies
# command: exec
# db: demo
# expect: protocol
from metaexec import _channel

for _ in range(100_000):
    _channel.send({"op": "db.query", "sql": "SELECT * FROM properties", "params": []})
