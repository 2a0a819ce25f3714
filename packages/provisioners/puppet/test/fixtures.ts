import docker from "@kiln/driver-docker";
import type { DebootstrapSource } from "@kiln/driver-docker/testing";
import { createTestContext, testPluginInit } from "@kiln/test-suite";

/**
 * Debian bookworm minbase with puppet 7 from the mirror, built once with debootstrap (about a minute) and cached by recipe
 * like any debootstrap source, so cases on Docker don't install Puppet each time.
 */
export const PUPPET_SOURCE: { debootstrap: DebootstrapSource } = {
  debootstrap: { suite: "bookworm", variant: "minbase", include: ["python3", "puppet"] },
};

/** Builds the image of {@link PUPPET_SOURCE} unless it exists: call it from a hook, whose timeout allows the first build. */
export async function ensurePuppetImage(): Promise<void> {
  await using test = createTestContext();
  await docker(testPluginInit("driver", "docker")).resolveSource(test.ctx, { source: PUPPET_SOURCE });
}

/** Docker driver options that start a container with puppet (building its image first if needed). */
export async function puppetDockerOptions(): Promise<Record<string, unknown>> {
  await ensurePuppetImage();
  return { source: PUPPET_SOURCE };
}

/** A small Puppet project: a module whose class parameter comes from Hiera data, and a custom fact. */
export const MOTD_PROJECT: Record<string, string> = {
  "puppet/manifests/site.pp": "include motd\n",
  "puppet/modules/motd/manifests/init.pp": [
    "class motd (String $greeting) {",
    "  file { '/etc/kiln-motd':",
    "    ensure  => file,",
    `    content => "\${greeting} from \${facts['role']}\\n",`,
    "  }",
    "}",
    "",
  ].join("\n"),
  "puppet/hiera.yaml": [
    "---",
    "version: 5",
    "defaults:",
    "  datadir: data",
    "  data_hash: yaml_data",
    "hierarchy:",
    "  - name: common",
    "    path: common.yaml",
    "",
  ].join("\n"),
  "puppet/data/common.yaml": 'motd::greeting: "hello from hiera"\n',
};

export const MOTD_OPTIONS = {
  manifest_file: "puppet/manifests/site.pp",
  module_paths: ["puppet/modules"],
  hiera_config_path: "puppet/hiera.yaml",
  hiera_data_path: "puppet/data",
  facter: { role: "web" },
};

/**
 * A web server in Puppet: a module whose class takes its parameters from Hiera, installs nginx, writes its site config from an
 * ERB template and a page from an EPP template (with a custom fact in it).
 */
export const WEB_PROJECT: Record<string, string> = {
  "puppet/manifests/site.pp": "include web\n",
  "puppet/modules/web/manifests/init.pp": `class web (String $site_title, Integer $port) {
  package { 'nginx': ensure => installed }
  file { '/etc/nginx/sites-enabled/default':
    ensure  => absent,
    require => Package['nginx'],
  }
  file { '/etc/nginx/conf.d/kiln-site.conf':
    ensure  => file,
    content => template('web/site.conf.erb'),
    require => Package['nginx'],
  }
  file { ['/srv/www']:
    ensure => directory,
  }
  file { '/srv/www/index.html':
    ensure  => file,
    content => epp('web/index.html.epp', { 'title' => $site_title, 'role' => $facts['role'] }),
  }
  notify { "api token has \${length($facts['api_token'])} characters": }
}
`,
  "puppet/modules/web/templates/site.conf.erb": `server {
    listen <%= @port %> default_server;
    root /srv/www;
    index index.html;
}
`,
  "puppet/modules/web/templates/index.html.epp": `<%- | String $title, String $role | -%>
<html><body><h1><%= $title %></h1><p>role: <%= $role %></p></body></html>
`,
  "puppet/hiera.yaml": MOTD_PROJECT["puppet/hiera.yaml"] ?? "",
  "puppet/data/common.yaml": 'web::site_title: "Baked by Puppet"\nweb::port: 8080\n',
};
