import type { APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';
import { realtimeRuntime } from './core/clients';
import { handleMessage } from './core/messages';

const runtime = realtimeRuntime('message');

// Handles every action route and $default. The returned body is the route response: API Gateway sends it back
// on the caller's socket, so replies cost no extra @connections call.
export const handler = async (event: APIGatewayProxyWebsocketEventV2) => {
  const reply = await handleMessage(
    {
      connectionId: event.requestContext.connectionId,
      body: event.isBase64Encoded ? null : event.body,
    },
    runtime,
  );
  return { statusCode: 200, body: JSON.stringify(reply) };
};
