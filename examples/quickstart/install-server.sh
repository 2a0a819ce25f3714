#!/bin/sh
# Installs the start command of the web image. The port is not baked in: it comes from $PORT when the container starts.
set -eu
cat > /usr/local/bin/serve-site <<'SCRIPT'
#!/bin/sh
: "${PORT:?set PORT, e.g. docker run -e PORT=8080 ...}"
exec python3 -m http.server "$PORT" --bind 0.0.0.0 --directory /srv/www
SCRIPT
chmod 0755 /usr/local/bin/serve-site
echo "$APP_VERSION" > /srv/www/version.txt
chown -R www:www /srv/www
