export { artifactStore, type ArtifactStore, type ArtifactFileInput, type NewArtifact } from "./artifact-store.js";
export { outsideCommand, knownHostsName, type OutsideCommandOptions } from "./connection.js";
export { lazyDriver, type DriverOperations, type DriverShape } from "./lazy.js";
export { withFileLock, type FileLockOptions } from "./lock.js";
export { shellJoin, shellQuote } from "./shell.js";
export { findExecutable, missingTools, type RequiredTool } from "./tools.js";
export { DEFAULT_EXCLUDES, hashTree, type HashTreeOptions } from "./tree-hash.js";
export { extractDownload, extractTar } from "./tar.js";
export { readHostFile, type ReadHostFileOptions } from "./read.js";
