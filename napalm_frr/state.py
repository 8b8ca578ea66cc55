"""Router-side state of the FRR driver: shell scripts run on the router (POSIX ``sh``).

Layout of the state directory (default ``$HOME/.local/state/napalm-frr/<pathspace>``, mode
0700, owned by the SSH user, checked on every open)::

    lock                      flock(1) file: every commit, confirm, rollback and revert holds it
    sessions/<session>/       one private working directory per open driver (candidate, diff
                              input, logs); removed by close()
    commits/<commit>/         before.conf, after.conf (running config around the commit),
                              info ("<session> <epoch>"), state (active, pending, confirmed,
                              rolled-back, reverted), *.log
    stack                     ids of the commits still in effect, oldest first; only the top
                              one can be rolled back (undoing an older one would undo later ones)
    pending                   "<commit> <timer pid> <deadline epoch> <session>" while a
                              commit-confirm timer is armed (at most one per router)

The revert timer is a detached process (its own session, so it outlives the SSH connection);
it reverts only if ``pending`` still names its commit and its pid when it wakes, under the
lock, so a confirm and a revert can never both happen.
"""

from __future__ import annotations

import shlex

#: Exit codes of the scripts below (the driver maps them to exceptions).
RC_PENDING = 6  # another commit awaits confirmation
RC_NOT_PENDING = 3  # confirm: nothing pending
RC_OTHER_PENDING = 10  # confirm: the pending commit is not the one named
RC_UNKNOWN = 13  # rollback: no such commit recorded on the router
RC_NOT_TOP = 11  # rollback: not the last commit in effect
RC_DRIFT = 12  # rollback: running config changed since the commit
RC_LOCK = 8  # could not take the router-side lock
RC_UNSAFE = 20  # state directory unsafe (symlink, owner, mode)
RC_SESSION = 21  # session directory exists already (planted)

KEEP_COMMITS = 20


def q(text: str) -> str:
    return shlex.quote(text)


def locked(state: str, body: str) -> str:
    """``body`` run while holding the router-side lock (fd 9; children must close it)."""
    return f"exec 9>>{q(state + '/lock')} && flock -w 60 9 || exit {RC_LOCK}\n{body}"


def prepare(state_expr: str, session: str, executables: list[str]) -> str:
    """Create (or check) the state directory and this session's private directory; print the
    state directory's absolute path. ``state_expr`` is a shell word (may use ``$HOME``).

    Safe against a local attacker on the router: every ancestor must be owned by root or the
    user and not writable by others unless sticky (like OpenSSH StrictModes); the directory
    itself must be a real directory (not a symlink) owned by the user, and is made 0700; the
    session directory is created with ``mkdir`` (fails on anything planted there)."""
    checks = " ".join(q(e) for e in executables)
    return f"""umask 077
for x in {checks}; do
  case "$x" in /*) ;; *) echo "not an absolute path: $x"; exit {RC_UNSAFE};; esac
  [ -f "$x" ] && [ -x "$x" ] || {{ echo "not an executable file: $x"; exit {RC_UNSAFE}; }}
done
d={state_expr}
case "$d" in /*) ;; *) echo "state directory is not absolute: $d"; exit {RC_UNSAFE};; esac
me=$(id -u)
p=$d
while :; do
  p=$(dirname -- "$p")
  if [ -e "$p" ] || [ -L "$p" ]; then
    set -- $(stat -c '%u %a' -- "$p")
    [ "$1" = 0 ] || [ "$1" = "$me" ] || {{ echo "$p is owned by uid $1"; exit {RC_UNSAFE}; }}
    m=$2; w=$(( 0$m & 022 )); t=$(( 0$m & 01000 ))
    [ -L "$p" ] || [ "$w" = 0 ] || [ "$t" != 0 ] || {{
      echo "$p is writable by others"; exit {RC_UNSAFE}; }}
  fi
  [ "$p" = / ] && break
done
[ -L "$d" ] && {{ echo "$d is a symlink"; exit {RC_UNSAFE}; }}
mkdir -p -- "$d" || exit {RC_UNSAFE}
[ -L "$d" ] && {{ echo "$d is a symlink"; exit {RC_UNSAFE}; }}
[ -d "$d" ] || {{ echo "$d is not a directory"; exit {RC_UNSAFE}; }}
[ "$(stat -c %u -- "$d")" = "$me" ] || {{ echo "$d is not owned by uid $me"; exit {RC_UNSAFE}; }}
chmod 700 -- "$d" || exit {RC_UNSAFE}
for sub in sessions commits; do
  [ -L "$d/$sub" ] && {{ echo "$d/$sub is a symlink"; exit {RC_UNSAFE}; }}
  [ -d "$d/$sub" ] || mkdir -m 700 -- "$d/$sub" || exit {RC_UNSAFE}
  [ "$(stat -c %u -- "$d/$sub")" = "$me" ] || {{ echo "$d/$sub: owner"; exit {RC_UNSAFE}; }}
done
for f in lock stack pending; do
  [ -L "$d/$f" ] && {{ echo "$d/$f is a symlink"; exit {RC_UNSAFE}; }}
done
# sessions that crashed more than a day ago leave their directory: clear them
find "$d/sessions" -mindepth 1 -maxdepth 1 -type d -mmin +1440 -exec rm -rf -- {{}} + 2>/dev/null
mkdir -m 700 -- "$d/sessions/{session}" || {{ echo "session dir exists"; exit {RC_SESSION}; }}
echo "$d"
"""


def remove_session(state: str, session: str) -> str:
    return f"rm -rf -- {q(state + '/sessions/' + session)}"


def _pending_alive() -> str:
    """Sets pc/ppid/pdl/psid from ``pending``; drops a stale file (timer gone, e.g. reboot)."""
    return (
        'pc=; ppid=; pdl=; psid=; if [ -f "$d/pending" ]; then '
        'read pc ppid pdl psid < "$d/pending"; '
        'if ! kill -0 "$ppid" 2>/dev/null; then rm -f "$d/pending"; pc=; fi; fi'
    )


def commit(
    *,
    state: str,
    commit_id: str,
    session: str,
    check: str,
    running: str,
    apply: str,
    restore_before: str,
    timer: str | None,
) -> str:
    """One commit, under the lock: refuse while any commit is pending, check the candidate,
    save the rollback point, apply (restoring it on failure), record the commit, arm the timer.
    ``check``/``running``/``apply``/``restore_before`` are command lines; ``timer`` the
    detached revert timer (see :func:`timer`) or None."""
    c = f"{state}/commits/{commit_id}"
    log = f"{c}/apply.log"
    keep = KEEP_COMMITS
    body = f"""d={q(state)}
{_pending_alive()}
[ -n "$pc" ] && {{ echo "$pc $pdl $psid"; exit {RC_PENDING}; }}
{check} > {q(state + "/sessions/" + session + "/check.log")} 2>&1 || {{
  cat {q(state + "/sessions/" + session + "/check.log")}; exit 3; }}
mkdir -m 700 -- {q(c)} || exit 9
echo {q(session)} "$(date +%s)" > {q(c + "/info")}
{running} > {q(c + "/before.conf")} || {{ rm -rf -- {q(c)}; exit 4; }}
if ! {{ {apply}; }} > {q(log)} 2>&1; then
  {restore_before} > {q(c + "/restore.log")} 2>&1
  cat {q(log)}; rm -rf -- {q(c)}; exit 5
fi
{running} > {q(c + "/after.conf")}
echo {q(commit_id)} >> "$d/stack"
tail -n {keep} "$d/stack" > "$d/stack.new" && mv -f "$d/stack.new" "$d/stack"
ls -1 "$d/commits" | sort | head -n -{keep} | while read old; do
  grep -qxF "$old" "$d/stack" || rm -rf -- "$d/commits/$old"; done
"""
    if timer is None:
        body += f"echo active > {q(c + '/state')}\n"
    else:
        body += f"""echo pending > {q(c + "/state")}
rm -f "$d/pending.new"
setsid sh -c {q(timer)} </dev/null >/dev/null 2>&1 9>&- &
n=0; while [ ! -f "$d/pending" ] && [ $n -lt 500 ]; do sleep 0.01; n=$((n+1)); done
if [ ! -f "$d/pending" ]; then
  {restore_before} >/dev/null 2>&1; rm -rf -- {q(c)}
  head -n -1 "$d/stack" > "$d/stack.new"; mv -f "$d/stack.new" "$d/stack"; exit 7
fi
"""
    return locked(state, body)


def timer(*, state: str, commit_id: str, session: str, seconds: int, restore_before: str) -> str:
    """The revert timer's own script (run with ``setsid sh -c``): announce itself in
    ``pending``, sleep, then revert only if ``pending`` still names this commit and this pid."""
    c = f"{state}/commits/{commit_id}"
    wake = locked(
        state,
        f"""d={q(state)}
read pc ppid pdl psid < "$d/pending" 2>/dev/null || exit 0
[ "$pc" = {q(commit_id)} ] && [ "$ppid" = "$$" ] || exit 0
{restore_before} > {q(c + "/revert.log")} 2>&1
echo "reverted after {seconds} s rc=$?" >> {q(c + "/revert.log")}
echo reverted > {q(c + "/state")}
grep -vxF {q(commit_id)} "$d/stack" > "$d/stack.new"; mv -f "$d/stack.new" "$d/stack"
rm -f "$d/pending"
""",
    )
    return (
        f"d={q(state)}; echo {q(commit_id)} $$ $(( $(date +%s) + {seconds} )) {q(session)} "
        f'> "$d/pending.new" && mv -f "$d/pending.new" "$d/pending"; sleep {seconds}; {wake}'
    )


def pending(state: str) -> str:
    """Print ``<commit> <deadline> <session>`` of the armed timer, or nothing."""
    return f'd={q(state)}; {_pending_alive()}; [ -n "$pc" ] && echo "$pc $pdl $psid"; true'


def confirm(state: str, commit_id: str) -> str:
    c = f"{state}/commits/{commit_id}"
    return locked(
        state,
        f"""d={q(state)}
{_pending_alive()}
[ -n "$pc" ] || exit {RC_NOT_PENDING}
[ "$pc" = {q(commit_id)} ] || {{ echo "$pc $pdl $psid"; exit {RC_OTHER_PENDING}; }}
rm -f "$d/pending"
kill -TERM -"$ppid" 2>/dev/null
echo confirmed > {q(c + "/state")}
""",
    )


def rollback(*, state: str, commit_id: str, running: str, restore_before: str) -> str:
    """Undo ``commit_id``: only if it is the last commit in effect (top of the stack) and the
    running config is still what that commit left (anything else would undo more than it)."""
    c = f"{state}/commits/{commit_id}"
    return locked(
        state,
        f"""d={q(state)}
[ -d {q(c)} ] || exit {RC_UNKNOWN}
top=$(tail -n 1 "$d/stack" 2>/dev/null)
if [ "$top" != {q(commit_id)} ]; then
  echo "$(cat {q(c + "/state")} 2>/dev/null) ${{top:-none}}"; exit {RC_NOT_TOP}
fi
{running} > {q(c + "/now.conf")} || exit 4
if ! cmp -s {q(c + "/now.conf")} {q(c + "/after.conf")}; then
  diff {q(c + "/after.conf")} {q(c + "/now.conf")} | grep -c '^[<>]'; exit {RC_DRIFT}
fi
{_pending_alive()}
if [ "$pc" = {q(commit_id)} ]; then rm -f "$d/pending"; kill -TERM -"$ppid" 2>/dev/null; fi
{restore_before} > {q(c + "/rollback.log")} 2>&1 || {{ cat {q(c + "/rollback.log")}; exit 4; }}
echo rolled-back > {q(c + "/state")}
head -n -1 "$d/stack" > "$d/stack.new"; mv -f "$d/stack.new" "$d/stack"
""",
    )
