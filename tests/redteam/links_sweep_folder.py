# redteam: 1 links: the results folder's files replaced by a link to a folder outside, before the host writes
# command: sweep --grid x=0..3:1
# db: none
# expect: ok
# sanitized: sweep
import os

from metaexec import params, result

if not os.path.islink("sweep"):
    try:
        os.symlink("../decoy", "sweep")
    except FileExistsError:
        pass
# Instances run side by side in one folder: another may be planting the same links.
for name in ["scenarios.csv", "results.json", "report.html"]:
    try:
        if os.path.lexists(name):
            os.remove(name)
        os.symlink("sweep/target.txt", name)
    except (FileExistsError, FileNotFoundError):
        pass
result([{"x": params["x"]}])
