/**
 * Shell probes run on the verify machine. They need only POSIX sh and coreutils-level tools (minimal images have no ps, ss
 * or curl), take their inputs as arguments ($1, $2) so nothing is quoted into the script, and print lines Kiln parses.
 */

/** `MISSING`, or `<octal mode> <owner> <group>` then the first MiB of content. */
export const FILE_PROBE = `p="$1"
if [ ! -e "$p" ] && [ ! -L "$p" ]; then echo MISSING; exit 0; fi
stat -c '%a %U %G' "$p"
[ -f "$p" ] && head -c 1048576 "$p"
exit 0`;

/** The kernel's socket tables: one "<local hex address>:<hex port> <hex state>" per line. */
export const SOCKETS_PROBE = `for f in /proc/net/$1 /proc/net/\${1}6; do [ -r "$f" ] && awk 'NR > 1 { print $2, $4 }' "$f"; done; exit 0`;

/** `<pid> <comm>` for each process whose name or argv[0] is $1 (not this probe itself). */
export const PROCESS_PROBE = `n="$1"
for d in /proc/[0-9]*; do
  pid=\${d#/proc/}
  [ "$pid" = "$$" ] && continue
  c=$(cat "$d/comm" 2>/dev/null) || continue
  a=$(tr '\\0' '\\n' < "$d/cmdline" 2>/dev/null | head -n 1)
  a=\${a##*/}
  if [ "$c" = "$n" ] || [ "$a" = "$n" ]; then echo "$pid $c"; fi
done
exit 0`;

/** `systemd <state>` when systemd is PID 1, `init <exit code>` for a SysV script, else `none`. */
export const SERVICE_PROBE = `n="$1"
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && command -v systemctl >/dev/null 2>&1; then
  echo "systemd $(systemctl is-active "$n" 2>/dev/null)"
elif [ -x "/etc/init.d/$n" ]; then
  "/etc/init.d/$n" status >/dev/null 2>&1; echo "init $?"
else
  echo none
fi`;

/** `<manager> installed <version>`, `<manager> absent`, or `none` when no package manager is known. */
export const PACKAGE_PROBE = `n="$1"
if command -v dpkg-query >/dev/null 2>&1; then
  out=$(dpkg-query -W -f='\${Status}\\t\${Version}' "$n" 2>/dev/null)
  case "$out" in *"ok installed"*) echo "dpkg installed \${out#*	}";; *) echo "dpkg absent";; esac
elif command -v rpm >/dev/null 2>&1; then
  v=$(rpm -q --qf '%{VERSION}-%{RELEASE}' "$n" 2>/dev/null) && echo "rpm installed $v" || echo "rpm absent"
elif command -v apk >/dev/null 2>&1; then
  v=$(apk info -e -v "$n" 2>/dev/null) && [ -n "$v" ] && echo "apk installed \${v#"$n"-}" || echo "apk absent"
else
  echo none
fi`;

/** The passwd entry of $1 (empty when there is none), then `groups: <names>`. */
export const USER_PROBE = `getent passwd "$1" 2>/dev/null || grep "^$1:" /etc/passwd 2>/dev/null
printf 'groups: '; id -nG "$1" 2>/dev/null || echo`;

/** The body of GET $1 then a last line `KILN_STATUS:<code>`, using whichever client the image has; `KILN_NO_CLIENT` if none. */
export const HTTP_PROBE = `url="$1"
if command -v curl >/dev/null 2>&1; then
  curl -sS -m 5 -o - -w '\\nKILN_STATUS:%{http_code}' "$url"
elif command -v python3 >/dev/null 2>&1; then
  python3 - "$url" <<'PY'
import sys, urllib.request, urllib.error
try:
    response = urllib.request.urlopen(sys.argv[1], timeout=5)
    body, code = response.read(), response.status
except urllib.error.HTTPError as error:
    body, code = error.read(), error.code
sys.stdout.write(body.decode("utf-8", "replace") + "\\nKILN_STATUS:%d" % code)
PY
elif command -v wget >/dev/null 2>&1; then
  body=$(wget -q -S -T 5 -O - "$url" 2>/tmp/.kiln-http-headers)
  code=$(grep -o 'HTTP/[0-9.]* [0-9]*' /tmp/.kiln-http-headers | tail -n 1 | cut -d' ' -f2)
  printf '%s\\nKILN_STATUS:%s' "$body" "$code"
else
  echo KILN_NO_CLIENT
fi`;
