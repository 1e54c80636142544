# redteam: 2 deadlines/protocol: results sent for a scenario the host did not hand out
# command: sweep --grid x=0..5:1
# db: none
# expect: protocol
# seconds: 30
from metaexec import _channel, params, result

_channel.scenario_end()
result({"forged": params["x"]})
