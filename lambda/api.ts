import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { handleApi } from './core/api';
import { realtimeRuntime } from './core/clients';
import { signOutDeps } from './core/revoke';

const runtime = realtimeRuntime('api');
const signOut = signOutDeps(runtime);

export const handler = (event: APIGatewayProxyEventV2) => handleApi(event, { ...runtime, ...(signOut ? { signOut } : {}) });
