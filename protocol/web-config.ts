/**
 * `/config.json`: what a deployment (lib/edge.ts) or the local system (local/system.ts) tells the web app. Public
 * values only (it is served to anyone).
 *
 * Runs in Node and in browsers.
 */

export const WEB_CONFIG_PATH = '/config.json';

export interface WebConfig {
  region: string;
  userPoolId: string;
  userPoolClientId: string;
  /** The sockets' URLs. @default the page's own origin: /ws/realtime and /ws/speech, as CloudFront serves them */
  realtimeUrl?: string;
  speechUrl?: string;
  /** `session`: cookie sign-in through /api, no token in the page. `token`: Amplify in the browser. @default 'session' */
  authMode?: 'session' | 'token';
  /** Local only: where Amplify signs in (cognito-local, proxied on the page's origin). @default Cognito's endpoint */
  cognitoEndpoint?: string;
}

/** The CloudFront paths of the two sockets. */
export const SOCKET_PATHS = { realtime: '/ws/realtime', speech: '/ws/speech' } as const;
