#!/usr/bin/env bash
# Entrypoint of every compose service: refuse to start while a secret still holds a placeholder, then run the
# service's own entrypoint and command ("$@"). A secret is any variable whose name says so (PASSWORD, SECRET, SALT,
# TOKEN, KEY, or a *_URL / *_CONN carrying a password); a placeholder is empty, `change-me`, `generate-...` or
# `another-random-string` (what .env.example ships). Names are printed, values never.
set -euo pipefail
bad=()
while IFS='=' read -r name value; do
  case "$name" in
    *PASSWORD*|*SECRET*|*SALT*|*TOKEN*|*_KEY|*_URL|*_CONN) ;;
    *) continue ;;
  esac
  case "$value" in
    *change-me*|generate-*|another-random-string) bad+=("$name") ;;
  esac
done < <(env)
if [ -n "${ALLIANCE_REQUIRED_SECRETS:-}" ]; then
  for name in ${ALLIANCE_REQUIRED_SECRETS//,/ }; do
    if [ -z "${!name:-}" ]; then bad+=("$name"); fi
  done
fi
if [ ${#bad[@]} -gt 0 ]; then
  printf 'refusing to start: placeholder or empty secret in %s; set real values in .env (see .env.example)\n' \
    "$(printf '%s ' "${bad[@]}" | sed 's/ $//')" >&2
  exit 78
fi
exec "$@"
