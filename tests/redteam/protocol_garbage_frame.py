# redteam: 2 protocol: a malformed frame and a frame of an unknown op
# command: exec
# command: sweep --grid x=0..1:1
# db: none
# expect: protocol
from metaexec import _channel

_channel._write(_channel._PREFIX + b"5\n\x00\xff\xff\xff\xff")
_channel.send({"op": "format_disk"})
