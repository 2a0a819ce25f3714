#!/bin/sh
# Installs the start command of the web image. The port is not baked in: it comes from $PORT when the container starts.
set -eu
cat > /usr/local/bin/serve-site <<'SCRIPT'
#!/bin/sh
# Runtime configuration: PORT from the environment, or from /etc/default/serve-site (mounted or written at boot).
[ -r /etc/default/serve-site ] && . /etc/default/serve-site
: "${PORT:?set PORT, e.g. docker run -e PORT=8080 ... or provide /etc/default/serve-site}"
exec python3 -m http.server "$PORT" --bind 0.0.0.0 --directory /srv/www
SCRIPT
chmod 0755 /usr/local/bin/serve-site
echo "$APP_VERSION" > /srv/www/version.txt
chown -R www:www /srv/www
