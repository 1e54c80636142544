# Prepended to the red-team scripts whose header names it (`# prelude: ...`).
from metaexec import db, result


def every_attempt_refused(attempts):
    """Runs every query. Any answer is a hole: it is reported as a result, and the run
    then ends "ok", which the harness rejects. When all are refused, the run ends on the
    first refusal itself, uncaught, so its outcome is `db_denied`."""
    leaked = []
    for sql in attempts:
        try:
            leaked.append([sql, db.query(sql)])
        except db.DenyError:
            pass
    if leaked:
        result({"leaked": leaked})
    else:
        db.query(attempts[0])
