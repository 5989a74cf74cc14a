// Workers in tests log at WARN: their INFO lines (state changes, bundling) drown the test output.
// The Runtime is a per-process singleton, so a second test file in the same fork finds it set.
import { DefaultLogger, Runtime } from '@temporalio/worker';

try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  // already installed in this process
}
