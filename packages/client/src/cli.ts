/**
 * `npx gatehouse <command>`: a small CLI over the same client and protocol as everything else.
 *
 *   token    --user <email> [--password <pw>]                        print an access token
 *   connect  --user <email> [--room <room>] [--tenant <id>]           interactive session
 *   publish  --tenant <id> --room <room> --type <kind> --payload <json> [--source <name>]
 *   speak    --user <email> --wav <file> [--out <file>]                talk to the speech service
 *
 * Targets the local system (`npm start` writes .gatehouse/local.json) by default, or a deployed stack with
 * `--outputs <file>` (from `npx cdk deploy --outputs-file <file>`), using your AWS credentials.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { SPEECH_INPUT_SAMPLE_RATE, SPEECH_OUTPUT_SAMPLE_RATE } from '../../../protocol';
import { LOCAL_CONFIG_ENV, LOCAL_CONFIG_PATH, PUBLISH_DETAIL_TYPE, parsePublishRequest, type Json, type Member, type MessageEvent } from '../../../protocol';
import { sessionTokenProvider, signInWithPassword } from './auth';
import { createNodeClient, GatehouseClient, nodeSocket, type Transport } from './node';
import { changeError, presenceNames } from './format';
import { SpeechClient } from './speech';
import { parseWav, writeWav } from './wav';
import { readLocalConfig } from './local-config';

/** Each command's usage, shown by `<command> --help` and, all together, by `--help`. */
const COMMAND_HELP = {
  token: `  token    --user <email> [--password <pw>]
           Sign in and print the access token, and nothing else (TOKEN=$(npx gatehouse token --user ...)).`,
  connect: `  connect  --user <email> [--password <pw>] [--room <room>] [--tenant <id>] [--transport header|subprotocol]
           Interactive session. Type a line to send it to the current room; /join <room>, /leave <room>,
           /room <room> (switch), /who (who is in the room), /edit <seq> <text>, /delete <seq>, /whoami,
           /help, /quit.`,
  publish: `  publish  --tenant <id> --room <room> --type <kind> --payload <json> [--source <name>]
           Publish to a tenant's room through the event bus, as a backend service would.`,
  speak: `  speak    --user <email> [--password <pw>] --wav <file> [--out <file>]
           Stream a WAV recording (16 kHz mono 16-bit) to the speech service, print the transcripts, and save
           the spoken answer (24 kHz) to --out.`,
} as const;
type Command = keyof typeof COMMAND_HELP;
const isCommand = (name: string | undefined): name is Command => name !== undefined && Object.hasOwn(COMMAND_HELP, name);

const TARGET_HELP = `Target (default: the local system started by \`npm start\`)
  --config <file>    local system description (default $${LOCAL_CONFIG_ENV}, else ${LOCAL_CONFIG_PATH} here or above)
  --outputs <file>   a deployed stack: the file written by \`npx cdk deploy --outputs-file <file>\`
  --stack <name>     stack name inside the outputs file (default Gatehouse)
`;

const USAGE = `Usage: npx gatehouse <command> [options]

Commands
${Object.values(COMMAND_HELP).join('\n')}

${TARGET_HELP}`;

const commandUsage = (command: Command) => `Usage: npx gatehouse ${command} [options]

${COMMAND_HELP[command]}

${TARGET_HELP}`;

/** Publish fields as the CLI's flags (all required), so that an error names what the user typed. */
const PUBLISH_FLAGS = { tenantId: 'tenant', room: 'room', type: 'type', payload: 'payload' } as const;
const PUBLISH_FIELD = new RegExp(`^(${Object.keys(PUBLISH_FLAGS).join('|')})\\b`);

interface Target {
  region: string;
  websocketUrl: string;
  speechUrl: string;
  clientId: string;
  eventBusName: string;
  cognito: CognitoIdentityProviderClient;
  events: EventBridgeClient;
  passwordOf(email: string): string | undefined;
}

type Values = Record<string, string | boolean | undefined>;

function target(values: Values): Target {
  const local = { accessKeyId: 'local', secretAccessKey: 'local' };
  if (typeof values.outputs === 'string') {
    const outputs = JSON.parse(readFileSync(values.outputs, 'utf8')) as Record<string, Record<string, string>>;
    const stack = outputs[String(values.stack ?? 'Gatehouse')];
    if (!stack) throw new Error(`Stack ${String(values.stack ?? 'Gatehouse')} not found in ${values.outputs}`);
    return {
      region: stack.Region,
      websocketUrl: stack.WebSocketUrl,
      speechUrl: stack.SpeechUrl,
      clientId: stack.UserPoolClientId,
      eventBusName: stack.EventBusName,
      cognito: new CognitoIdentityProviderClient({ region: stack.Region }),
      events: new EventBridgeClient({ region: stack.Region }),
      passwordOf: () => process.env.GATEHOUSE_PASSWORD,
    };
  }
  const config = readLocalConfig(typeof values.config === 'string' ? values.config : undefined);
  return {
    region: config.region,
    websocketUrl: config.websocketUrl,
    speechUrl: config.speechUrl,
    clientId: config.clientId,
    eventBusName: config.eventBusName,
    cognito: new CognitoIdentityProviderClient({ region: config.region, endpoint: config.cognitoEndpoint, credentials: local }),
    events: new EventBridgeClient({ region: config.region, endpoint: config.eventsEndpoint, credentials: local }),
    passwordOf: (email) => config.users.find((u) => u.email === email)?.password,
  };
}

function credentials(values: Values, t: Target): { user: string; password: string } {
  const user = values.user;
  if (typeof user !== 'string') throw new Error('--user <email> is required');
  const password = typeof values.password === 'string' ? values.password : t.passwordOf(user);
  if (!password) throw new Error(`No password for ${user}: pass --password (or set GATEHOUSE_PASSWORD)`);
  return { user, password };
}

function describe(message: MessageEvent): string {
  // Messages stored before senders carried names have none: fall back to the id rather than print nothing.
  const who = 'userId' in message.sender ? message.sender.name || message.sender.userId.slice(0, 8) : `service:${message.sender.service}`;
  const kind = message.kind ? ` ${message.kind}` : '';
  return `[${message.room} #${message.seq}] ${who}${kind}: ${content(message.data)}`;
}

/** A user's text message prints as its text; anything else (published payloads) as JSON. */
function content(data: Json): string {
  const text = data && typeof data === 'object' && !Array.isArray(data) ? data.text : undefined;
  return typeof text === 'string' && Object.keys(data as object).length === 1 ? text : JSON.stringify(data);
}

/** "Alice Liddell (you), Bob Marley": this user first, then by name (the web app lists people the same way). */
function people(users: Member[], me: string | undefined): string {
  return presenceNames(users, me).join(', ') || 'nobody';
}

const COMMANDS = `Commands:
  /join <room>          join a room (and send to it)
  /leave <room>         leave a room
  /room <room>          send to another joined room
  /who                  who is in the current room
  /edit <seq> <text>    replace the text of your message #<seq> in the current room
  /delete <seq>         delete message #<seq> in the current room (yours; anyone's for an admin)
  /whoami               who you are signed in as
  /help                 this list
  /quit                 disconnect
Any other line is sent to the current room.`;

async function token(values: Values): Promise<void> {
  const t = target(values);
  const { user, password } = credentials(values, t);
  const tokens = await signInWithPassword(t.cognito, t.clientId, user, password);
  process.stdout.write(`${tokens.accessToken}\n`);
}

async function publish(values: Values): Promise<void> {
  for (const flag of Object.values(PUBLISH_FLAGS)) {
    if (typeof values[flag] !== 'string') throw new Error(`--${flag} is required (npx gatehouse publish --help)`);
  }
  let payload: Json;
  try {
    payload = JSON.parse(String(values.payload)) as Json;
  } catch {
    throw new Error('--payload must be JSON');
  }
  const detail = { tenantId: values.tenant, room: values.room, type: values.type, payload };
  const parsed = parsePublishRequest(detail);
  if (!parsed.ok) {
    const named = parsed.error.replace(PUBLISH_FIELD, (field) => `--${PUBLISH_FLAGS[field as keyof typeof PUBLISH_FLAGS]}`);
    throw new Error(`Not publishable: ${named}`);
  }
  const t = target(values);
  const result = await t.events.send(
    new PutEventsCommand({
      Entries: [
        {
          EventBusName: t.eventBusName,
          Source: typeof values.source === 'string' ? values.source : 'gatehouse.cli',
          DetailType: PUBLISH_DETAIL_TYPE,
          Detail: JSON.stringify(parsed.request),
        },
      ],
    }),
  );
  const entry = result.Entries?.[0];
  if (!entry?.EventId) throw new Error(`Publish failed: ${entry?.ErrorCode ?? 'unknown'} ${entry?.ErrorMessage ?? ''}`);
  process.stdout.write(`published ${parsed.request.type} to ${parsed.request.tenantId}/${parsed.request.room} (event ${entry.EventId})\n`);
}

async function connect(values: Values): Promise<void> {
  const t = target(values);
  const { user, password } = credentials(values, t);
  const url = typeof values.tenant === 'string' ? `${t.websocketUrl}?tenant=${encodeURIComponent(values.tenant)}` : t.websocketUrl;
  const client: GatehouseClient = createNodeClient({
    url,
    token: sessionTokenProvider(t.cognito, t.clientId, user, password),
    transport: (values.transport as Transport | undefined) ?? 'header',
  });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  client.on('state', ({ state, retryInMs }) => say(`* ${state}${retryInMs === undefined ? '' : ` (retry in ${retryInMs} ms)`}`));
  client.on('message', (m) => say(describe(m)));
  client.on('changed', (c) =>
    say(c.type === 'message.updated' ? `* ${c.by.name} edited ${c.room} #${c.target}: ${content(c.data)}` : `* ${c.room} #${c.target} deleted by ${c.by.name}`),
  );
  client.on('gap', (g) => say(`* ${g.room}: messages ${g.from}-${g.to} are older than the replay window`));
  client.on('error', (e) => say(`! ${e.message}`));

  // Presence events carry the whole list; what changed is the difference from the last one. A room's first list
  // (the join's snapshot) is printed by the join itself.
  const present = new Map<string, Map<string, string>>();
  client.on('presence', ({ room: name, users }) => {
    const before = present.get(name);
    present.set(name, new Map(users.map((u) => [u.userId, u.name])));
    if (!before) return;
    const me = client.identity?.userId;
    for (const u of users) if (!before.has(u.userId) && u.userId !== me) say(`* ${u.name} joined ${name}`);
    for (const [userId, gone] of before) if (!users.some((u) => u.userId === userId) && userId !== me) say(`* ${gone} left ${name}`);
  });
  // Only who starts typing is printed (a line each time would drown the conversation); the client clears the rest.
  const typing = new Map<string, Set<string>>();
  client.on('typing', ({ room: name, users }) => {
    const before = typing.get(name) ?? new Set<string>();
    for (const u of users) if (!before.has(u.userId)) say(`* ${u.name} is typing in ${name}…`);
    typing.set(name, new Set(users.map((u) => u.userId)));
  });
  const joined = async (name: string) => {
    await client.join(name);
    say(`* joined ${name} (here: ${people(client.presenceOf(name), client.identity?.userId)})`);
  };

  await client.connect();
  const me = await client.whoami();
  say(`* signed in as ${me.name} <${user}> (user ${me.userId}, tenant ${me.tenantId}, connection ${me.connectionId})`);
  let room = typeof values.room === 'string' ? values.room : undefined;
  if (room) await joined(room);

  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  for await (const line of rl) {
    const text = line.trim();
    const [command, arg] = text.split(/\s+/, 2);
    try {
      if (command === '/quit') break;
      if (command === '/join' && arg) {
        await joined(arg);
        room = arg;
      } else if (command === '/leave' && arg) {
        await client.leave(arg);
        present.delete(arg);
        typing.delete(arg);
        say(`* left ${arg}`);
        if (room === arg) room = undefined;
      } else if (command === '/room' && arg) {
        room = arg;
        say(`* sending to ${arg}`);
      } else if (command === '/who') {
        if (!room) say('! join a room first: /join <room>');
        else say(`* in ${room}: ${people(await client.refreshPresence(room), client.identity?.userId)}`);
      } else if (command === '/edit' || command === '/delete') {
        const match = command === '/edit' ? /^\/edit\s+#?(\d+)\s+(.+)$/.exec(text) : /^\/delete\s+#?(\d+)$/.exec(text);
        if (!match) say(command === '/edit' ? '! usage: /edit <seq> <text>' : '! usage: /delete <seq>');
        else if (!room) say('! join a room first: /join <room>');
        else {
          const seq = Number(match[1]);
          // The change prints when it comes back as an event, like everyone else's.
          try {
            if (command === '/edit') await client.edit(room, seq, { text: match[2].trim() });
            else await client.delete(room, seq);
          } catch (err) {
            say(`! ${changeError(command === '/edit' ? 'edit' : 'delete', err)}`);
          }
        }
      } else if (command === '/help') {
        say(COMMANDS);
      } else if (command === '/whoami') {
        say(JSON.stringify(await client.whoami()));
      } else if (text.startsWith('/')) {
        // A mistyped command is not a message for everyone in the room.
        say(['/join', '/leave', '/room'].includes(command) ? `! ${command} needs a room: ${command} <room>` : `! unknown command ${command}`);
        say(COMMANDS);
      } else if (text && room) {
        await client.send(room, { text });
      } else if (text) {
        say('! join a room first: /join <room>');
      }
    } catch (err) {
      say(`! ${(err as Error).message}`);
    }
  }
  await client.close();
  // /quit before the input ends (a terminal, a pipe still open): an open stdin would keep the process alive.
  process.stdin.destroy();
}

async function speak(values: Values): Promise<void> {
  if (typeof values.wav !== 'string') throw new Error('--wav <file> is required');
  const wav = parseWav(readFileSync(values.wav));
  if (wav.sampleRate !== SPEECH_INPUT_SAMPLE_RATE || wav.channels !== 1) {
    throw new Error(`The speech service takes ${SPEECH_INPUT_SAMPLE_RATE} Hz mono; ${values.wav} is ${wav.sampleRate} Hz with ${wav.channels} channels.`);
  }
  const t = target(values);
  const { user, password } = credentials(values, t);
  const { accessToken } = await signInWithPassword(t.cognito, t.clientId, user, password);
  const speech = new SpeechClient({ url: t.speechUrl, token: accessToken, socket: nodeSocket('subprotocol') });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const audio: Uint8Array[] = [];
  let turnEnded: () => void = () => undefined;
  const turn = new Promise<void>((resolve) => (turnEnded = resolve));
  speech.on('audio', (pcm) => audio.push(pcm));
  speech.on('event', (e) => {
    if (e.type === 'transcript' && e.final) say(`${e.role}: ${e.text}`);
    if (e.type === 'error') say(`! ${e.code}: ${e.message}`);
    if (e.type === 'turn_end') turnEnded();
  });
  speech.on('close', ({ code, reason }) => code !== 1000 && say(`* closed ${code} ${reason}`));
  await speech.connect();
  speech.start();
  // Real time, in 100 ms frames, then a second of silence so the end of the utterance is heard.
  const frame = (SPEECH_INPUT_SAMPLE_RATE / 10) * 2;
  const samples = new Uint8Array([...wav.data, ...new Uint8Array(SPEECH_INPUT_SAMPLE_RATE * 2)]);
  for (let i = 0; i < samples.length; i += frame) {
    speech.sendAudio(samples.subarray(i, i + frame));
    await new Promise((r) => setTimeout(r, 100));
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([turn, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
  clearTimeout(timer);
  speech.stop();
  speech.close();
  const bytes = audio.reduce((n, a) => n + a.length, 0);
  say(`* received ${(bytes / 2 / SPEECH_OUTPUT_SAMPLE_RATE).toFixed(2)} s of audio`);
  if (typeof values.out === 'string') {
    const data = new Uint8Array(bytes);
    let offset = 0;
    for (const a of audio) {
      data.set(a, offset);
      offset += a.length;
    }
    writeFileSync(values.out, writeWav({ sampleRate: SPEECH_OUTPUT_SAMPLE_RATE, channels: 1, data }));
    say(`* saved ${values.out}`);
  }
}

async function main(): Promise<void> {
  // Node 20 is supported here; the SDK's notice about its future Node 22 requirement would only add noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const [command, ...rest] = process.argv.slice(2);
  const { values } = parseArgs({
    args: rest,
    options: {
      user: { type: 'string' },
      password: { type: 'string' },
      room: { type: 'string' },
      tenant: { type: 'string' },
      type: { type: 'string' },
      payload: { type: 'string' },
      source: { type: 'string' },
      transport: { type: 'string' },
      config: { type: 'string' },
      outputs: { type: 'string' },
      stack: { type: 'string' },
      wav: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (isCommand(command) && values.help) {
    process.stdout.write(commandUsage(command));
    return;
  }
  switch (command) {
    case 'token':
      return token(values);
    case 'publish':
      return publish(values);
    case 'connect':
      return connect(values);
    case 'speak':
      return speak(values);
    default:
      if (command && command !== 'help' && command !== '--help' && command !== '-h') {
        process.stderr.write(`gatehouse: unknown command "${command}" (the commands: ${Object.keys(COMMAND_HELP).join(', ')})\n\n${USAGE}`);
        process.exitCode = 2;
      } else {
        process.stdout.write(USAGE);
      }
  }
}

main().catch((err: Error) => {
  process.stderr.write(`gatehouse: ${err.message}\n`);
  process.exit(1);
});
