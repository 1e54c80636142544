# redteam: 2 protocol: the host interface called directly, with a result that is not JSON and a nameless result
# command: exec
# command: sweep --grid x=0..1:1
# db: none
# expect: protocol
from wit_world.imports import host

try:
    host.emit("x", "\xff{not json")
except BaseException:
    pass
host.emit("", "1")
host.emit("after", "1")
