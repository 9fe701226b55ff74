// A page on @gatehouse/client: bundle it (`npx esbuild page.js --bundle --format=esm --outfile=page.bundle.js`) and
// load it from page.html. It asks its own server for the socket URL and an access token (/gatehouse.json): how a
// page gets its token is the application's choice (Amplify, the Gatehouse session API, your backend).
import { GatehouseClient, presenceNames } from '@gatehouse/client';

const $ = (id) => document.getElementById(id);
const line = (list, text) => {
  const li = document.createElement('li');
  li.textContent = text; // textContent, never innerHTML: names and messages come from other users
  $(list).append(li);
};

const { url, token, room } = await (await fetch('/gatehouse.json')).json();
const client = new GatehouseClient({ url, token: () => token });

client.on('state', ({ state }) => ($('state').textContent = state));
client.on('presence', ({ users }) => ($('presence').textContent = presenceNames(users, client.identity?.userId).join(', ')));
client.on('message', (m) => line('messages', `#${m.seq} ${'name' in m.sender ? m.sender.name : m.sender.service}: ${m.data?.text ?? JSON.stringify(m.data)}`));

await client.connect();
await client.join(room);
await client.send(room, { text: 'hello from the browser' });
