import type { Context } from 'aws-lambda';
import { realtimeRuntime } from './core/clients';
import { handlePublish, type PublishEvent } from './core/publish';

const runtime = realtimeRuntime('publish');

// Target of the event-bus rule, invoked asynchronously: a thrown error makes Lambda retry (twice), then the event
// goes to the failed-invocations queue. The claim on the event lasts as long as this invocation may run.
export const handler = (event: PublishEvent, context: Context) => handlePublish(event, runtime, { remainingMs: context.getRemainingTimeInMillis() });
