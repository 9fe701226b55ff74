// Sign in, join a room, say hello, and print what happens there: who is present, and every message.
//
//   GATEHOUSE_URL=wss://... COGNITO_CLIENT_ID=... AWS_REGION=eu-west-1 \
//   GATEHOUSE_USER=alice@example.com GATEHOUSE_PASSWORD=... node node.mjs general
//
// Against the local system (`npm start` in the Gatehouse checkout), take the values from .gatehouse/local.json
// (websocketUrl, clientId, region) and add COGNITO_ENDPOINT=<cognitoEndpoint>.
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { createNodeClient, presenceNames, sessionTokenProvider } from '@gatehouse/client/node';

const env = (name) => {
  if (!process.env[name]) throw new Error(`Set ${name}`);
  return process.env[name];
};
const room = process.argv[2] ?? 'general';
const cognito = new CognitoIdentityProviderClient({ region: env('AWS_REGION'), endpoint: process.env.COGNITO_ENDPOINT });

const client = createNodeClient({
  url: env('GATEHOUSE_URL'),
  // Signs in once, then refreshes the access token before it expires (and on every reconnect).
  token: sessionTokenProvider(cognito, env('COGNITO_CLIENT_ID'), env('GATEHOUSE_USER'), env('GATEHOUSE_PASSWORD')),
});

client.on('state', ({ state }) => console.log(`state ${state}`));
client.on('presence', ({ room, users }) => console.log(`present in ${room}: ${presenceNames(users, client.identity?.userId).join(', ')}`));
client.on('message', (m) => console.log(`message in ${m.room} #${m.seq}: ${JSON.stringify(m.data)}`));
client.on('error', (err) => console.error(`error: ${err.message}`));

await client.connect();
await client.join(room);
await client.send(room, { text: `hello from Node, ${client.identity?.name}` });

process.on('SIGINT', () => void client.close().then(() => process.exit(0)));
process.on('SIGTERM', () => void client.close().then(() => process.exit(0)));
