#!/bin/bash
# Pterodactyl-style entrypoint (as in pterodactyl/yolks): the Agent passes the template's
# startup command in $STARTUP with {{VAR}} placeholders; each becomes ${VAR}, which the shell
# expands from the container's environment. The command is echoed, then run by `bash -c`,
# which execs a single simple command, so the game itself (not a wrapper shell) is the
# process that gets the stop signal.
cd /home/container || exit 1
if [ -z "${STARTUP:-}" ]; then
  [ "$#" -gt 0 ] || { echo "entrypoint: STARTUP is empty" >&2; exit 64; }
  exec "$@"
fi
MODIFIED_STARTUP=$(printf '%s\n' "$STARTUP" | sed -e 's/{{\([A-Za-z_][A-Za-z0-9_]*\)}}/${\1}/g')
printf ':/home/container$ %s\n' "$MODIFIED_STARTUP"
exec /bin/bash -c "$MODIFIED_STARTUP"
