/** Every Docker object a test creates carries this label; scripts/test.mjs sweeps by it. */
export const TEST_LABEL = "openwork.test";
export const TEST_LABELS: Record<string, string> = { [TEST_LABEL]: "1" };
