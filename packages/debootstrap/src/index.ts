export {
  buildRootfs,
  DEBOOTSTRAP_LABEL_PREFIX,
  defaultCacheDir,
  describeRecipe,
  extractRootfs,
  findRootfs,
  resolveRecipe,
  rootfsLabels,
  type BuildIo,
  type DebootstrapRecipe,
  type ResolvedRecipe,
  type Rootfs,
} from "./debootstrap.js";
export { pickDebianMirror, readAptSources, type AptSource } from "./apt-sources.js";
export { debootstrapRecipeSchema } from "./schema.js";
export { rootfsSource, sha256File, sourceTarball, storedTarball, type ParentStore, type RootfsSourceOption } from "./source.js";
