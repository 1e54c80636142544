# redteam: 2 deadlines: a forged end, then a sleep in a host call outside any scenario
# command: sweep --grid x=0..7:1 --timeout 1
# db: none
# expect: timeout
# seconds: 25
import time

from metaexec import _channel

_channel.scenario_end()
time.sleep(3600)
