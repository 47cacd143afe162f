/** The components an upgrade can move. */
export const UPGRADABLE = ["opencode", "opencode-router", "openwork-server"] as const;
export type Upgradable = (typeof UPGRADABLE)[number];
