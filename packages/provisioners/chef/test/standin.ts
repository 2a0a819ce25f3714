import { readFileSync } from "node:fs";
import { expect } from "vitest";
import { execOk } from "@kiln/test-suite";
import type { Machine } from "@kiln/core";

/**
 * Kiln's tests cannot install Chef or Cinc (no package is obtainable on the build machine), so they install a STAND-IN
 * `chef-solo` (test/fixtures/chef-solo-standin.py) through the provisioner's own install_command. It checks what Kiln gives
 * it and writes {@link STANDIN_RESULT}; it is not Chef.
 */
export const STANDIN = readFileSync(new URL("./fixtures/chef-solo-standin.py", import.meta.url), "utf8");
export const STANDIN_RESULT = "/etc/kiln-chef-standin.json";

/** An install_command that writes the stand-in to /usr/local/bin/<name> (a heredoc: nothing is downloaded). */
export function installStandin(name: "chef-solo" | "cinc-solo" = "chef-solo"): string {
  return `mkdir -p /usr/local/bin\ncat > /usr/local/bin/${name} <<'KILN_STANDIN_EOF'\n${STANDIN}KILN_STANDIN_EOF\nchmod 0755 /usr/local/bin/${name}\necho installed stand-in ${name}`;
}

export const DATA_BAG_SECRET = "test-edb-secret-0123456789abcdef";

/** A small Chef repository: two cookbook directories, a role, an environment, data bags (one item "encrypted"), a secret. */
export const PROJECT: Record<string, string> = {
  "cookbooks/app/metadata.rb": 'name "app"\nversion "1.0.0"\n',
  "cookbooks/app/recipes/default.rb": 'file "/etc/app.conf" do\n  content node["app"]["greeting"]\nend\n',
  "cookbooks/app/recipes/fail.rb": 'execute "fail" do\n  command "false"\nend\n',
  "cookbooks/app/recipes/sleep.rb": 'execute "sleep 60"\n',
  "cookbooks/app/recipes/leak_secret.rb": "log Chef::EncryptedDataBagItem.load_secret\n",
  "site-cookbooks/base/metadata.rb": 'name "base"\nversion "0.1.0"\n',
  "site-cookbooks/base/recipes/default.rb": 'package "curl"\n',
  "roles/web.json": JSON.stringify({
    name: "web",
    json_class: "Chef::Role",
    run_list: ["recipe[base]", "recipe[app]"],
    default_attributes: { app: { port: 8080, greeting: "from the role" } },
  }),
  "environments/production.json": JSON.stringify({
    name: "production",
    json_class: "Chef::Environment",
    default_attributes: { app: { tier: "prod" } },
  }),
  "data_bags/users/alice.json": JSON.stringify({ id: "alice", shell: "/bin/bash" }),
  "data_bags/credentials/db.json": JSON.stringify({
    id: "db",
    password: { encrypted_data: "c3RhbmQtaW4=", iv: "aXY=", version: 1, cipher: "aes-256-cbc" },
  }),
  "secrets/data_bag_secret": `${DATA_BAG_SECRET}\n`,
};

/** Options that use every part of {@link PROJECT}. */
export const FULL_OPTIONS = {
  cookbook_paths: ["cookbooks", "site-cookbooks"],
  roles_path: "roles",
  environments_path: "environments",
  data_bags_path: "data_bags",
  run_list: ["role[web]"],
  json: { app: { greeting: "hello from json" } },
  chef_environment: "production",
  encrypted_data_bag_secret_path: "secrets/data_bag_secret",
  install_command: installStandin(),
  chef_license: "accept-no-persist",
};

export interface StandinResult {
  client: string;
  arguments: string[];
  log_level: string | null;
  no_color: boolean;
  staging: string;
  chef_license: string | null;
  solo_rb_keys: string[];
  run_list: string[];
  recipes: string[];
  environment: string;
  attributes: Record<string, unknown>;
  cookbooks: string[];
  data_bags: Record<string, string[]>;
  encrypted_data_bag_secret: boolean;
}

export async function standinResult(machine: Machine): Promise<StandinResult> {
  return JSON.parse(await execOk(machine, `cat ${STANDIN_RESULT}`)) as StandinResult;
}

/** Nothing of the run is left: no staging directory, no secret anywhere Chef or Kiln could have written it. */
export async function expectNothingLeft(machine: Machine, staging?: string): Promise<void> {
  if (staging !== undefined) expect(await execOk(machine, `test -e '${staging}' && echo present || echo gone`)).toBe("gone\n");
  expect(await execOk(machine, "ls -A /tmp /var/tmp | grep -E '^kiln-' || true")).toBe("");
  const leaked = await execOk(machine, `grep -rlsF '${DATA_BAG_SECRET}' /tmp /var /etc /root /opt /usr/local /home || true`);
  expect(leaked).toBe("");
}
