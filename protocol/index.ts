/**
 * Every wire contract of Gatehouse, in one browser-safe folder: the realtime protocol (actions, events, the reply
 * each request gets), the speech protocol, the session HTTP API, `/config.json`, close codes, credential refusal
 * reasons, limits and defaults. Clients, Lambdas, the speech service, the web app, the local system and the tests
 * import them from here; lint (eslint.config.mjs) keeps this folder free of anything Node-only.
 */
export * from './auth';
export * from './close-codes';
export * from './limits';
export * from './local-config';
export * from './realtime';
export * from './session-api';
export * from './speech';
export * from './web-config';
