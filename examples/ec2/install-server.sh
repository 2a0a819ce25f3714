#!/bin/sh
# Installs a small static site and the command that serves it. The port is not baked in: it comes from $PORT at boot.
set -eu
id www >/dev/null 2>&1 || useradd --system --create-home --home-dir /srv/www --shell /usr/sbin/nologin www
cat > /srv/www/index.html <<'HTML'
<!doctype html><title>Kiln</title><h1>Baked by Kiln</h1>
HTML
cat > /usr/local/bin/serve-site <<'SCRIPT'
#!/bin/sh
: "${PORT:?set PORT in the instance's environment (user data)}"
exec python3 -m http.server "$PORT" --bind 0.0.0.0 --directory /srv/www
SCRIPT
chmod 0755 /usr/local/bin/serve-site
echo "$APP_VERSION" > /srv/www/version.txt
chown -R www:www /srv/www
