# redteam: 1 links: links left for the user's own tools to follow (file, folder, dangling, chained)
# command: exec
# db: none
# expect: ok
# sanitized: evil
# sanitized: up
# sanitized: fresh.txt
# sanitized: hop
# sanitized: sub/deeper/back
import os

from metaexec import result

os.symlink("../decoy/target.txt", "evil")
os.symlink("..", "up")
os.symlink("../decoy/created-by-guest.txt", "fresh.txt")
os.symlink("evil", "hop")
os.makedirs("sub/deeper")
os.symlink("../../../decoy/nested/deep.txt", "sub/deeper/back")
os.symlink("../sub", "sub/deeper/inside")  # stays inside: kept
# The guest itself cannot follow them out.
escaped = []
for path in ["evil", "up/outside.txt", "fresh.txt"]:
    try:
        with open(path, "w") as f:
            f.write("pwned")
        escaped.append(path)
    except OSError:
        pass
result({"escaped": escaped})
