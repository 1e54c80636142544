# redteam: 1 links: the sweep's report files planted as relative links out of the results folder
# command: sweep --grid x=0..2:1 --xlsx
# db: none
# expect: ok
# sanitized: scenarios.csv
# sanitized: results.json
# sanitized: report.html
# sanitized: sweep.xlsx
import os

from metaexec import params, result

# Every depth a host path could need, and the decoys beside the results folder.
for name, target in [
    ("scenarios.csv", "../decoy/target.txt"),
    ("results.json", "../decoy/.bashrc"),
    ("report.html", "../../../../../../../../tmp/metaexec-redteam-report.html"),
    ("sweep.xlsx", "../outside.txt"),
]:
    try:
        os.symlink(target, name)
    except FileExistsError:
        pass
# A CSV header from a result key, as the original attack used.
result([{";touch /tmp/metaexec-redteam-pwned;": params["x"]}])
