# redteam: 2 deadlines: the script replaces the runtime's entry points so that every later call spins, inside and outside its scenarios
# command: sweep --grid x=0..3:1 --timeout 2
# command: sweep --grid x=0..3:1 --timeout 2 --workers 1
# db: none
# expect: timeout
# seconds: 25
import metaexec_app


def spin(*args):
    while True:
        pass


metaexec_app.Runner.run = spin
metaexec_app.Runner.load = spin
metaexec_app._seed = spin
