/** What the deployment (or `npm start`) tells the app at /config.json (the contract: protocol/web-config.ts). */
import { SOCKET_PATHS, WEB_CONFIG_PATH, type WebConfig } from '../../protocol';

export type AppConfig = WebConfig;

export async function loadConfig(): Promise<Required<Pick<AppConfig, 'realtimeUrl' | 'speechUrl' | 'authMode'>> & AppConfig> {
  const response = await fetch(WEB_CONFIG_PATH, { cache: 'no-store' });
  if (!response.ok) throw new Error(`Could not load ${WEB_CONFIG_PATH} (${response.status})`);
  if (!(response.headers.get('content-type') ?? '').includes('application/json')) throw new Error(`Could not load ${WEB_CONFIG_PATH}: the answer is not JSON.`);
  const config = (await response.json()) as AppConfig;
  const ws = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  return {
    ...config,
    realtimeUrl: config.realtimeUrl ?? `${ws}${SOCKET_PATHS.realtime}`,
    speechUrl: config.speechUrl ?? `${ws}${SOCKET_PATHS.speech}`,
    authMode: config.authMode ?? 'session',
    ...(config.cognitoEndpoint ? { cognitoEndpoint: new URL(config.cognitoEndpoint, location.href).href } : {}),
  };
}

/** `url` with one more query parameter. */
export const withQuery = (url: string, name: string, value: string) => `${url}${url.includes('?') ? '&' : '?'}${name}=${encodeURIComponent(value)}`;
