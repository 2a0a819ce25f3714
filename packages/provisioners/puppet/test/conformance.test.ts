import docker from "@kiln/driver-docker";
import { execOk, testProvisioner } from "@kiln/test-suite";
import puppet from "../src/index.js";
import { sshDocker, sshDockerOptions } from "@kiln/communicator-ssh/testing";
import { MOTD_OPTIONS, MOTD_PROJECT, puppetDockerOptions } from "./fixtures.js";

/** Nothing staged is left: the default staging directories are gone (and with them every module and data file). */
const noStaging = async (machine: Parameters<typeof execOk>[0]) => {
  const left = await execOk(machine, "ls -d /tmp/kiln-puppet-* 2>/dev/null || true");
  if (left !== "") throw new Error(`staging left on the machine: ${left}`);
};

// Cases run on both machines; the SSH image has no puppet, so they ask for install: true (on Docker puppet is there and
// install is skipped). Each case on SSH installs puppet with apt-get on a fresh machine.
testProvisioner("puppet", {
  factory: puppet,
  machines: {
    "a Docker container": { factory: docker, options: puppetDockerOptions },
    "SSH as a non-root login with sudo": { factory: sshDocker, options: () => sshDockerOptions("kiln") },
  },
  cases: [
    {
      name: "a manifest with a module, hiera data and a custom fact",
      files: MOTD_PROJECT,
      options: { ...MOTD_OPTIONS, install: true },
      check: async (machine) => {
        const motd = await execOk(machine, "cat /etc/kiln-motd");
        if (motd !== "hello from hiera from web\n") throw new Error(`unexpected /etc/kiln-motd: ${JSON.stringify(motd)}`);
        await noStaging(machine);
      },
    },
    {
      name: "a manifest directory, a staging and a working directory, and extra arguments",
      files: {
        "site/a.pp": "exec { 'record cwd': command => '/bin/sh -c \"pwd > /etc/kiln-cwd\"', creates => '/etc/kiln-cwd' }\n",
        "site/b.pp": "file { '/etc/kiln-from-b': content => \"b\\n\" }\n",
      },
      options: {
        manifest_file: "site",
        staging_directory: "/var/tmp/kiln-stage",
        working_directory: "/opt",
        extra_arguments: ["--logdest", "/var/log/kiln-puppet.log", "--logdest", "console"],
        install: true,
      },
      check: async (machine) => {
        if ((await execOk(machine, "cat /etc/kiln-cwd")) !== "/opt\n") throw new Error("puppet apply did not run in working_directory");
        if ((await execOk(machine, "cat /etc/kiln-from-b")) !== "b\n")
          throw new Error("the second manifest of the directory was not applied");
        if (!(await execOk(machine, "cat /var/log/kiln-puppet.log")).includes("Applied catalog"))
          throw new Error("extra_arguments did not reach puppet apply");
        if ((await execOk(machine, "test -e /var/tmp/kiln-stage && echo left || true")) !== "")
          throw new Error("staging_directory /var/tmp/kiln-stage was left behind");
      },
    },
  ],
  failing: {
    files: { "failing.pp": "exec { '/bin/false': }\nfile { '/etc/never': content => 'x', require => Exec['/bin/false'] }\n" },
    options: { manifest_file: "failing.pp", install: true },
    message:
      /exited with code 4 \(some resources failed\)\nfailed resources:\n {2}\/Stage\[main\]\/Main\/Exec\[\/bin\/false\]\nskipped because of failed dependencies:\n {2}\/Stage\[main\]\/Main\/File\[\/etc\/never\][\s\S]*'\/bin\/false' returned 1 instead of one of \[0\]/,
  },
  invalid: [
    {},
    { manifest_file: "" },
    { manifest_file: "site.pp", module_paths: "modules" },
    { manifest_file: "site.pp", facter: { role: 1 } },
    { manifest_file: "site.pp", facter: { "Not-A-Fact": "x" } },
    { manifest_file: "site.pp", extra_arguments: "--debug" },
    { manifest_file: "site.pp", staging_directory: "relative/dir" },
    { manifest_file: "site.pp", staging_directory: "/" },
    { manifest_file: "site.pp", hiera_data_path: "data" },
    { manifest_file: "site.pp", hiera_config_path: "puppet/hiera.yaml", hiera_data_path: "data" },
    { manifest_file: "site.pp", install: "yes" },
    { manifest_file: "site.pp", execute_command: "puppet apply" },
  ],
  fingerprintFile: "puppet/modules/motd/manifests/init.pp",
  timeout: 240_000,
});
