const USAGE: Record<string, string> = {
  kiln: `kiln — bake machine images as build artefacts

usage: kiln <command> [options]

commands:
  build      bake the images in the bake file (parents first)
  plan       show what build would do for each image, and why (cached, or what changed)
  images     list the project's artefacts as a lineage tree (keys, times, commits, tags, channels), or draw it (dot, mermaid, svg)
  provenance show an artefact's provenance chain down to its source
  outdated   list images that need a rebake (exit 3 if any): newer parent, changed inputs, --max-age
  promote    point a channel (staging, prod) at a verified artefact; --rollback to go back
  prune      remove old untagged artefacts, keeping the newest N (--keep) and everything tagged
  validate   check the bake file and report every problem with file:line:col
  verify     run an image's verify checks against an existing artefact
  inspect    show images, sources, provisioners (and the packages they resolve to) and variables (secrets hidden)
  plugins    list the drivers and provisioners that resolve from this project, and why one cannot be used
  init       write a starter kiln.yaml
  schema     print the bake file's JSON Schema (for editor completion)
  help       show help for a command
  version    print the version (also --version)

exit codes: 0 ok, 1 bake failed, 2 bad input, 130 interrupted
run 'kiln help <command>' for a command's options.`,
  build: `usage: kiln build [path] [options]

Bakes every image in the bake file: resolve source → launch → provision → capture → verify → tag.
path is a bake file or a directory holding kiln.yaml (default: the current directory).

options:
  -C, --dir <dir>          run as if started in <dir>
  -f, --file <path>        the bake file (kiln.yaml, kiln.config.ts)
  --only <a,b>             bake only these images (and the parents they are built on); -only works too
  --except <a,b>           bake all images but these (and their children)
  --var <name=value>       set a variable (repeatable); also KILN_VAR_<name> in the environment
  --var-file <file>        read variables from a YAML or JSON file (repeatable)
  --allow-path <dir>       let every image read and write this host directory outside the project (repeatable)
  --force, --force=a,b     rebake (all images, or these) even when an artefact with the same bake key exists
  --parallel <n>           bake up to n independent images at once (default: cores, at most 4)
  --on-error <mode>        cleanup (default): remove everything on failure; abort: keep the build machine and print how to attach
                           and the commands that remove what it kept
  --cleanup-timeout <d>    how long removing one resource may take, retries included (default 2m); what is still there
                           then is reported with the command to remove it, and the build exits 1
  --rebake-outdated        rebake exactly the outdated images (see kiln outdated) and their children, parents first
  --max-age <age>          with --rebake-outdated: also rebake images older than this (7d, 12h)
  --dry-run                print the plan (or, with --rebake-outdated, the waves) and bake nothing
  --manifest <path>        where to write the manifest (default: kiln-manifest.json next to the bake file)
  --json                   print one JSON event per line instead of progress

Ctrl-C stops the bake and removes everything it created; a second Ctrl-C exits at once and lists what was left behind.`,
  validate: `usage: kiln validate [path] [-C dir] [-f file] [--var name=value] [--var-file file] [--json]

Loads the bake file, its plugins and variables, and reports every problem at once (exit code 2). Launches nothing.`,
  plan: `usage: kiln plan [path] [-C dir] [-f file] [--only a,b] [--except c] [--force[=name]] [--var …] [--json | --matrix]

Resolves every image's sources and inputs without creating anything, and prints what kiln build would do:
  cached (key 3f2a…)                       an artefact with the same bake key exists and will be reused
  bake: no artefact                        never baked
  bake: parent changed (base 1a2b → 9c8d)  and the other inputs that changed since the newest artefact of the image

--json prints one line per image: image, action, reasons, bake_key, artifact_id, from, cached, and wave (the images to
bake in wave n are built only on cached images or on images of earlier waves; null when cached).
--matrix prints one JSON document for a CI matrix: waves (per wave {include: [{image, bake_key, from}…]}, images to bake
only, never an empty wave), wave_count, and the bake and cached counts. waves[n] is GitHub's strategy.matrix as is; each of its
jobs runs kiln build --only <image>. See docs/ci.md.`,
  images: `usage: kiln images [path] [-C dir] [--json | --format text|json|dot|mermaid|svg]

Lists the artefacts of this project's images as a tree (base → children, siblings drawn with ├─ and └─), with bake key,
time, git commit, tags and channels.
--json (= --format json) prints the same tree as one document: {"project", "artifacts": [{image, id, key, parent, created,
git, source, tags, channels, children: […]}…]}.
--format dot or mermaid prints the lineage as a graph (an artefact per node with image, short id, version tags and
channels; an edge from each parent to the artefacts built on it), for a wiki or a pull request:
  kiln images --format dot | dot -Tpng > images.png      kiln images --format mermaid   (in a \`\`\`mermaid block)
--format svg renders the dot graph through Graphviz (exit code 2 if dot is missing: apt-get install -y graphviz).`,
  provenance: `usage: kiln provenance <id|tag> [-C dir] [--json]

Shows an artefact's provenance (image, bake key, run, commit, Kiln version, verify, source), then its parent's, down to the source
it started from (for a debootstrap base: suite, mirror and build time).`,
  outdated: `usage: kiln outdated [path] [-C dir] [--max-age 7d] [--json]

Reports images whose parent has a newer artefact, whose source or inputs changed, or whose newest artefact is older than
--max-age, and everything built on them, because of them ("web  outdated: base is outdated (older than 7d …)"): a rebake
of an image rebakes its children too. Exit code 0: all current; 3: something is outdated (for cron jobs and CI schedules).
Rebake with kiln build --rebake-outdated.
--json prints one line per image: image, outdated, reasons, artifact_id, and because_of (the outdated parent, or null).`,
  promote: `usage: kiln promote <image> <channel> [--artifact id|tag] [--force] [-C dir]
       kiln promote --rollback <image> <channel>

Points the channel (a tag kiln-channel/<project>/<image>:<channel>) at the image's newest artefact, or --artifact. Each
promotion is recorded as <channel>-<n>; --rollback returns to the artefact promoted before. Refuses an artefact without a
passed verify unless --force.`,
  prune: `usage: kiln prune [path] [-C dir] [--keep 3] [--dry-run]

Removes old untagged artefacts of each image beyond the newest --keep. Never removes a tagged artefact (versions, channels,
channel history) or one another artefact is built on.`,
  verify: `usage: kiln verify <image|artefact> [-C dir] [-f file] [--runtime-file file] [--var …] [--json]

Starts a fresh machine from an existing artefact, injects the verify block's runtime configuration (or that of
--runtime-file: a YAML/JSON file with env, files, boot_script, user_data), runs the checks and removes the machine.
<image> verifies the newest artefact of that image; an artefact id or tag verifies that one. Exit code 1 if a check fails.`,
  inspect: `usage: kiln inspect [path] [-C dir] [-f file] [--var name=value] [--var-file file] [--json]

Shows the images in bake order with their driver, source, provisioners (each with the package name@version it resolved
to), tags and verify checks, and the variables. Sensitive variables are shown as <sensitive>.`,
  plugins: `usage: kiln plugins [path] [-C dir] [-f file] [--json]

Lists the drivers and provisioners that resolve from this project: those the bake file names and those installed in
node_modules (the project's, then the kiln CLI's), each with its package, version, path, plugin API version, status and
the images and steps that use it. A plugin that cannot be used (not installed, cannot be imported, wrong shape, built for
another Kiln core) is explained with the fix. Runs no code of the project: a kiln.config.ts and plugins: files are not
loaded (installed packages are, as kiln validate does).
Exit code 2 if a plugin the bake file names cannot be used.`,
  init: `usage: kiln init [-C dir] [--force]

Writes a starter kiln.yaml (a Debian base from debootstrap and an app image built on it), and kiln.schema.json beside it
for editor completion (with the options of the plugins installed now; run kiln schema > kiln.schema.json after adding one).`,
  schema: `usage: kiln schema [-C dir]

Prints the JSON Schema of kiln.yaml, with the options of every driver and provisioner installed for the project's directory
(first-party @kiln/… packages and third-party kiln-driver-* / kiln-provisioner-* ones). Runs no code of the project.`,
};

export function helpText(command?: string): string | undefined {
  return USAGE[command ?? "kiln"];
}
