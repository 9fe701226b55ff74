/**
 * How the CLI finds a running local system: `npm start` writes this description, the `gatehouse` CLI reads it.
 */

/** Where `npm start` writes the description, relative to the Gatehouse checkout. */
export const LOCAL_CONFIG_PATH = '.gatehouse/local.json';

/** Names the description's file for CLIs started outside the checkout (a project that installed the package). */
export const LOCAL_CONFIG_ENV = 'GATEHOUSE_CONFIG';

export interface LocalConfig {
  region: string;
  websocketUrl: string;
  speechUrl: string;
  eventsEndpoint: string;
  cognitoEndpoint: string;
  userPoolId: string;
  clientId: string;
  eventBusName: string;
  users: Array<{ email: string; password: string; tenants: string[]; admin?: boolean }>;
}
