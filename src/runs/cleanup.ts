/**
 * Undo actions for a start in progress, run newest first. Whatever step a
 * start fails or is interrupted at, running the stack leaves nothing behind.
 */
export class CleanupStack {
  private readonly actions: Array<{ what: string; run: () => Promise<void> }> = [];

  push(what: string, run: () => Promise<void>): void {
    this.actions.push({ what, run });
  }

  /** Forget the actions: the start succeeded and what it made is now the run's. */
  commit(): void {
    this.actions.length = 0;
  }

  async run(onError: (what: string, error: unknown) => void): Promise<void> {
    while (this.actions.length > 0) {
      const action = this.actions.pop();
      if (!action) break;
      try {
        await action.run();
      } catch (error) {
        onError(action.what, error);
      }
    }
  }
}
