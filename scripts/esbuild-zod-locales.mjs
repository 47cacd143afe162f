// An esbuild plugin for both bundles: zod's classic API (and its core) re-export every locale as `locales`, and
// since our code uses `z` as a namespace object, esbuild keeps all of them (~500 KB Node parses on
// every start-up, ~50 ms). We only ever speak English (zod configures `en` itself), so the namespace
// is narrowed to that one locale; asking for another is then a build error, not a silent fallback.
import path from "node:path";

/** @type {import("esbuild").Plugin} */
export const zodEnglishOnly = {
  name: "zod-english-only",
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => {
      if (!/[\\/]zod[\\/]v4[\\/](classic|core)[\\/]/.test(args.importer)) return undefined;
      return { path: path.resolve(path.dirname(args.importer), args.path), namespace: "zod-english-only" };
    });
    build.onLoad({ filter: /.*/, namespace: "zod-english-only" }, (args) => ({
      contents: 'export { default as en } from "./en.js";',
      resolveDir: path.dirname(args.path),
      loader: "js",
    }));
  },
};
