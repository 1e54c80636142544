# redteam: 2 deadlines: the scenario ends itself with a forged end frame, then spins outside any scenario
# command: sweep --grid x=0..3:1 --timeout 2
# command: sweep --grid x=0..3:1 --timeout 2 --workers 1
# db: none
# expect: timeout
# seconds: 25
from metaexec import _channel

_channel.scenario_end()
while True:
    pass
