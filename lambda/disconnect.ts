import type { APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';
import { realtimeRuntime } from './core/clients';
import { disconnect } from './core/connection';

const runtime = realtimeRuntime('disconnect');

type DisconnectContext = APIGatewayProxyWebsocketEventV2['requestContext'] & {
  authorizer?: unknown;
  disconnectStatusCode?: number;
  disconnectReason?: string;
};

export const handler = (event: APIGatewayProxyWebsocketEventV2) => {
  const context = event.requestContext as DisconnectContext;
  return disconnect(
    {
      connectionId: context.connectionId,
      authorizer: context.authorizer,
      statusCode: context.disconnectStatusCode,
      reason: context.disconnectReason,
    },
    runtime,
  );
};
