/** What the deployment (or `npm start`) tells the app at /config.json. */
export interface AppConfig {
  region: string;
  userPoolId: string;
  userPoolClientId: string;
  /** Override the sockets' URLs; by default the page's own origin (/ws/realtime, /ws/speech), as CloudFront serves them. */
  realtimeUrl?: string;
  speechUrl?: string;
  /** `session` (default): cookie sign-in through /api, no token in the page. `token`: Amplify in the browser. */
  authMode?: 'session' | 'token';
  /** Local only: where Amplify signs in (cognito-local, proxied on the page's origin). */
  cognitoEndpoint?: string;
}

export async function loadConfig(): Promise<Required<Pick<AppConfig, 'realtimeUrl' | 'speechUrl' | 'authMode'>> & AppConfig> {
  const response = await fetch('/config.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`Could not load /config.json (${response.status})`);
  if (!(response.headers.get('content-type') ?? '').includes('application/json')) throw new Error('Could not load /config.json: the answer is not JSON.');
  const config = (await response.json()) as AppConfig;
  const ws = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
  return {
    ...config,
    realtimeUrl: config.realtimeUrl ?? `${ws}/ws/realtime`,
    speechUrl: config.speechUrl ?? `${ws}/ws/speech`,
    authMode: config.authMode ?? 'session',
    ...(config.cognitoEndpoint ? { cognitoEndpoint: new URL(config.cognitoEndpoint, location.href).href } : {}),
  };
}

/** `url` with one more query parameter. */
export const withQuery = (url: string, name: string, value: string) => `${url}${url.includes('?') ? '&' : '?'}${name}=${encodeURIComponent(value)}`;
