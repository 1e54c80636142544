# redteam: 2 deadlines: the script replaces the runtime's own helpers so that later scenarios sleep in a host call before and after the script
# command: sweep --grid x=0..7:1 --timeout 1
# db: none
# expect: timeout
# seconds: 25
import time

import metaexec_app

metaexec_app._set_params = lambda values: time.sleep(3600)
metaexec_app._flush = lambda: time.sleep(3600)
