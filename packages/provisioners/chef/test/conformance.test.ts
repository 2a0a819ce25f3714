import { expect } from "vitest";
import docker from "@kiln/driver-docker";
import { testProvisioner } from "@kiln/test-suite";
import chef from "../src/index.js";
import { sshDocker, sshDockerOptions } from "@kiln/communicator-ssh/testing";
import { fixtureOptions } from "@kiln/driver-docker/testing";
import { execOk } from "@kiln/test-suite";
import { expectNothingLeft, FULL_OPTIONS, installStandin, PROJECT, standinResult } from "./standin.js";

// chef-solo here is Kiln's test STAND-IN (test/fixtures/chef-solo-standin.py), installed through install_command: no Chef or
// Cinc package can be installed on the machine that runs these tests. It checks what Kiln stages and writes a result file.
testProvisioner("chef (stand-in chef-solo)", {
  factory: chef,
  machines: {
    "a Docker container": { factory: docker, options: fixtureOptions },
    "SSH as a non-root login with sudo": { factory: sshDocker, options: () => sshDockerOptions("kiln") },
  },
  cases: [
    {
      name: "stand-in chef-solo gets staged cookbooks, role, environment, data bags, secret and attributes; nothing is left",
      files: PROJECT,
      options: FULL_OPTIONS,
      check: async (machine) => {
        const result = await standinResult(machine);
        expect(result.client).toBe("chef-solo");
        expect(result.arguments).toEqual(["--no-color", "-c", `${result.staging}/solo.rb`, "-j", `${result.staging}/node.json`]);
        expect(result.staging).toMatch(/^\/tmp\/kiln-chef-\w{6}$/);
        expect(result.chef_license).toBe("accept-no-persist");
        expect(result.run_list).toEqual(["role[web]"]);
        expect(result.recipes).toEqual(["base::default", "app::default"]);
        expect(result.environment).toBe("production");
        // environment < role < node JSON, as Chef merges default attributes and normal ones.
        expect(result.attributes).toEqual({ app: { port: 8080, greeting: "hello from json", tier: "prod" } });
        expect(result.cookbooks).toEqual(["app", "base"]);
        expect(result.data_bags).toEqual({ credentials: ["db"], users: ["alice"] });
        expect(result.encrypted_data_bag_secret).toBe(true);
        await expectNothingLeft(machine, result.staging);
      },
    },
    {
      name: "stand-in cinc-solo is chosen over chef-solo when both are installed",
      files: PROJECT,
      options: {
        cookbook_paths: ["cookbooks"],
        run_list: ["recipe[app]"],
        install_command: `${installStandin("cinc-solo")}\nprintf '#!/bin/sh\\necho wrong client >&2\\nexit 99\\n' > /usr/local/bin/chef-solo\nchmod 0755 /usr/local/bin/chef-solo`,
      },
      check: async (machine) => {
        const result = await standinResult(machine);
        expect(result.client).toBe("cinc-solo");
        expect(result.chef_license).toBeNull();
        expect(result.recipes).toEqual(["app::default"]);
        expect(await execOk(machine, "command -v chef-solo")).toBe("/usr/local/bin/chef-solo\n");
        await expectNothingLeft(machine, result.staging);
      },
    },
  ],
  failing: {
    files: PROJECT,
    options: { ...FULL_OPTIONS, run_list: ["role[web]", "recipe[app::fail]"] },
    message:
      /^chef: chef-solo \(run_list role\[web\], recipe\[app::fail\]\) exited with code 1\nlast output:\n[\s\S]*FATAL: Mixlib::ShellOut::ShellCommandFailed/,
  },
  invalid: [
    {},
    { cookbook_paths: ["cookbooks"] },
    { cookbook_paths: ["cookbooks"], run_list: [] },
    { cookbook_paths: ["cookbooks"], run_list: ["apache2"] },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[]"] },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app] ; rm -rf /"] },
    { cookbook_paths: ["cookbooks"], run_list: "recipe[app]" },
    { cookbook_paths: "cookbooks", run_list: ["recipe[app]"] },
    { cookbook_paths: [], run_list: ["recipe[app]"] },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], unknown: 1 },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], chef_environment: "production" },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], environments_path: "e", chef_environment: "prod env" },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], json: { run_list: ["recipe[other]"] } },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], json: ["not", "an", "object"] },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], staging_directory: "relative/dir" },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], staging_directory: "/" },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], staging_directory: "/tmp/../etc" },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], chef_license: "yes" },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], install_command: "true", skip_install: true },
    { cookbook_paths: ["cookbooks"], run_list: ["recipe[app]"], extra_arguments: "-l debug" },
  ],
  fingerprintFile: "cookbooks/app/recipes/default.rb",
});
