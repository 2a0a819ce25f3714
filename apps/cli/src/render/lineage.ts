import { LABELS, type Artifact } from "@kiln/core";
import { channelsOf, type Project } from "@kiln/core/engine";
import { shortId } from "./text.js";

/** One artefact in `kiln images`, with the artefacts built on it: the shape of `kiln images --json`. */
export interface LineageNode {
  image: string;
  id: string;
  key: string;
  /** Id of the artefact it was built on, null for one baked from a source. */
  parent: string | null;
  created: string;
  git: string;
  source: string;
  /** The image's own tags (versions); channel tags are in `channels`. */
  tags: string[];
  channels: string[];
  children: LineageNode[];
}

/**
 * The project's artefacts as a forest: roots are the artefacts whose parent is not one of the project's (baked from a source),
 * in bake-file order and newest first; children in the same order.
 */
export function lineageTree(project: Project, byImage: Map<string, Artifact[]>): LineageNode[] {
  const all = [...byImage.entries()].flatMap(([image, artifacts]) => artifacts.map((artifact) => ({ image, artifact })));
  const ids = new Set(all.map(({ artifact }) => artifact.id));
  const node = ({ image, artifact }: { image: string; artifact: Artifact }): LineageNode => ({
    image,
    id: artifact.id,
    key: artifact.labels[LABELS.key] ?? "",
    parent: artifact.labels[LABELS.parent] || null,
    created: artifact.labels[LABELS.created] ?? artifact.created ?? "",
    git: artifact.labels[LABELS.git] ?? "",
    source: artifact.labels[LABELS.source] ?? "",
    tags: artifact.tags.filter((tag) => !tag.startsWith("kiln-channel/")),
    channels: channelsOf(project, image, artifact),
    children: all.filter((child) => child.artifact.labels[LABELS.parent] === artifact.id).map(node),
  });
  return all.filter(({ artifact }) => !ids.has(artifact.labels[LABELS.parent] ?? "")).map(node);
}

/** The tree as `tree` draws it: ├─ for a child with siblings below it, └─ for the last, │ to carry a branch past a subtree. */
export function lineageText(roots: LineageNode[]): string[] {
  return roots.flatMap((root) => [summary(root), ...branchLines(root.children, "")]);
}

function branchLines(children: LineageNode[], prefix: string): string[] {
  return children.flatMap((node, index) => {
    const last = index === children.length - 1;
    const carry = last ? "   " : "│  ";
    return [`${prefix}${last ? "└─ " : "├─ "}${summary(node)}`, ...branchLines(node.children, prefix + carry)];
  });
}

function summary(node: LineageNode): string {
  const extras = [
    node.tags.length ? `tags: ${node.tags.join(", ")}` : "",
    node.channels.length ? `channels: ${node.channels.join(", ")}` : "",
  ]
    .filter(Boolean)
    .join("  ");
  const when = node.created.slice(0, 16).replace("T", " ");
  const line = `${node.image}  ${shortId(node.id)}  key ${node.key.slice(0, 12)}  ${when}  git ${node.git.slice(0, 12)}`;
  return extras ? `${line}  ${extras}` : line;
}

/** Every node of the forest, parents before children, with a graph id unique among them (from the short artefact id). */
function graphNodes(roots: LineageNode[]): { node: LineageNode; graphId: string }[] {
  const used = new Set<string>();
  const out: { node: LineageNode; graphId: string }[] = [];
  const visit = (node: LineageNode) => {
    // Dot and Mermaid ids are safest as [A-Za-z0-9_]; AMI and file-store ids have other characters.
    const base = `a_${shortId(node.id).replace(/[^A-Za-z0-9]/g, "_")}`;
    let graphId = base;
    for (let n = 2; used.has(graphId); n++) graphId = `${base}_${n}`;
    used.add(graphId);
    out.push({ node, graphId });
    node.children.forEach(visit);
  };
  roots.forEach(visit);
  return out;
}

/** What a node shows: image, short id, version tags, channels — one per line. */
function labelLines(node: LineageNode): string[] {
  return [node.image, shortId(node.id), ...node.tags, ...(node.channels.length ? [`channels: ${node.channels.join(", ")}`] : [])];
}

function edges(nodes: { node: LineageNode; graphId: string }[]): [string, string][] {
  const byId = new Map(nodes.map(({ node, graphId }) => [node, graphId]));
  return nodes.flatMap(({ node, graphId }) => node.children.map((child): [string, string] => [graphId, byId.get(child) ?? ""]));
}

/** Graphviz: `kiln images --format dot | dot -Tsvg`. Artefacts on a channel are filled, so what runs where stands out. */
export function lineageDot(projectName: string, roots: LineageNode[]): string {
  const dotEscape = (text: string) => text.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  const quote = (text: string) => `"${dotEscape(text)}"`;
  const nodes = graphNodes(roots);
  const lines = [
    `digraph ${quote(`kiln images: ${projectName}`)} {`,
    "  rankdir=TB;",
    '  node [shape=box, style=rounded, fontname="Helvetica"];',
    ...nodes.map(({ node, graphId }) => {
      const label = labelLines(node).map(dotEscape).join("\\n");
      const fill = node.channels.length ? ', style="rounded,filled", fillcolor="#dff0d8"' : "";
      return `  ${graphId} [label="${label}", tooltip=${quote(node.id)}${fill}];`;
    }),
    ...edges(nodes).map(([parent, child]) => `  ${parent} -> ${child};`),
    "}",
  ];
  return `${lines.join("\n")}\n`;
}

/** A Mermaid flowchart, for Markdown that renders Mermaid (GitHub, GitLab, many wikis). */
export function lineageMermaid(roots: LineageNode[]): string {
  // Inside a quoted Mermaid label, " < > and # are written as entity codes (# first: it starts one).
  const mermaidText = (text: string) => text.replace(/#/g, "#35;").replace(/"/g, "#quot;").replace(/</g, "#lt;").replace(/>/g, "#gt;");
  const nodes = graphNodes(roots);
  const onChannel = nodes.filter(({ node }) => node.channels.length > 0).map(({ graphId }) => graphId);
  const lines = [
    "flowchart TB",
    ...nodes.map(({ node, graphId }) => `  ${graphId}["${labelLines(node).map(mermaidText).join("<br/>")}"]`),
    ...edges(nodes).map(([parent, child]) => `  ${parent} --> ${child}`),
    ...(onChannel.length ? ["  classDef channel fill:#dff0d8,stroke:#3c763d", `  class ${onChannel.join(",")} channel`] : []),
  ];
  return `${lines.join("\n")}\n`;
}
