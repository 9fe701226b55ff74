import { realtimeRuntime } from './core/clients';
import { handlePublish, type PublishEvent } from './core/publish';

const runtime = realtimeRuntime('publish');

// Target of the event-bus rule. A thrown error (DynamoDB, API Gateway) makes EventBridge retry, then dead-letter.
export const handler = (event: PublishEvent) => handlePublish(event, runtime);
