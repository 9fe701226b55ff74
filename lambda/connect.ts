import type { APIGatewayProxyWebsocketEventV2 } from 'aws-lambda';
import { realtimeRuntime } from './core/clients';
import { connect } from './core/connection';

const runtime = realtimeRuntime('connect');

type ConnectEvent = APIGatewayProxyWebsocketEventV2 & { headers?: Record<string, string | undefined> };

export const handler = (event: ConnectEvent) =>
  connect(
    {
      connectionId: event.requestContext.connectionId,
      headers: event.headers,
      authorizer: (event.requestContext as { authorizer?: unknown }).authorizer,
    },
    runtime,
  );
