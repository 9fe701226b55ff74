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
 *
 * Errors name the flags the user typed, never the protocol's field names, and print as one line on stderr with a
 * non-zero exit; no token or password is printed except by `token`. One file (~650 lines) in sections: the target
 * and sign-in helpers the commands share, then one per command; a command that grows further gets a module.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as readline from 'node:readline';
import { parseArgs } from 'node:util';
import { CognitoIdentityProviderClient } from '@aws-sdk/client-cognito-identity-provider';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GROUP_DEFAULTS, SPEECH_INPUT_SAMPLE_RATE, SPEECH_OUTPUT_SAMPLE_RATE, parseClientMessage } from '../../../protocol';
import { LOCAL_CONFIG_ENV, LOCAL_CONFIG_PATH, PUBLISH_DETAIL_TYPE, parsePublishRequest, type Json, type LocalConfig, type Member, type MessageEvent } from '../../../protocol';
import { isRefusedByCognito, sessionTokenProvider, signInWithPassword, tenantsOfToken } from './auth';
import { createNodeClient, GatehouseClient, GatehouseError, nodeSocket, type ClientEvents, type Transport } from './node';
import { changeError, presenceNames } from './format';
import { SpeechClient } from './speech';
import { speechInput, writeWav, type SpeechInput } from './wav';
import { findLocalConfig, readLocalConfig } from './local-config';

/** Each command's usage, shown by `<command> --help` and, all together, by `--help`. */
const COMMAND_HELP = {
  token: `  token    --user <email> [--password <pw>]
           Sign in and print the access token, and nothing else (TOKEN=$(npx gatehouse token --user ...)).`,
  connect: `  connect  --user <email> [--password <pw>] [--room <room>] [--tenant <id>] [--transport header|subprotocol]
           Interactive session. Type a line to send it to the current room; /join <room>, /leave <room>,
           /room <room> (switch), /who (who is in the room), /edit <seq> <text>, /delete <seq>, /whoami,
           /help, /quit. A user in several tenants picks one with --tenant. Reconnects by itself (signing in
           again when its refresh token is refused); exits 1 when the sign-in is over (signed out, revoked).`,
  publish: `  publish  --tenant <id> --room <room> --type <kind> --payload <json> [--source <name>]
           Publish to a tenant's room through the event bus, as a backend service would. On the local system,
           a tenant none of its users is in (a typo such as --tenant acmee) gets a warning on stderr, and the
           event is published all the same (a tenant may have no users yet); a deployed stack's users are not
           checked (the CLI has no access to its user pool).`,
  speak: `  speak    --user <email> [--password <pw>] --wav <file> [--out <file>]
           Stream a WAV recording to the speech service, print the transcripts, and save the spoken answer
           (24 kHz mono 16-bit) to --out. Any uncompressed WAV: PCM of 8, 16, 24 or 32 bits or 32/64-bit
           float, any rate, mono or more channels (mixed down), resampled to ${SPEECH_INPUT_SAMPLE_RATE} Hz mono.`,
} as const;
type Command = keyof typeof COMMAND_HELP;
const isCommand = (name: string | undefined): name is Command => name !== undefined && Object.hasOwn(COMMAND_HELP, name);

const TARGET_HELP = `Target (default: the local system started by \`npm start\`)
  --config <file>    local system description (default $${LOCAL_CONFIG_ENV}, else ${LOCAL_CONFIG_PATH} here or above)
  --outputs <file>   a deployed stack: the file written by \`npx cdk deploy --outputs-file <file>\`
  --stack <name>     stack name inside the outputs file (default Gatehouse)
Passwords: --password, else a local demo user's own, else $GATEHOUSE_PASSWORD.
`;

const USAGE = `Usage: npx gatehouse <command> [options]

Commands
${Object.values(COMMAND_HELP).join('\n')}

${TARGET_HELP}`;

const commandUsage = (command: Command) => `Usage: npx gatehouse ${command} [options]

${COMMAND_HELP[command]}

${TARGET_HELP}`;

/** The protocol's field names as the CLI's flags, so that an error names what the user typed. */
const FIELD_FLAGS: Record<string, string> = { tenantid: 'tenant', room: 'room', type: 'type', payload: 'payload' };
/** "tenantId must be ...", "Room must be ...", 'Field "room" must ...' -> "--tenant must be ...", "--room must be ...". */
const asFlags = (message: string) =>
  message.replace(/^(?:Field ")?(\w+)"?/, (whole, field: string) => (FIELD_FLAGS[field.toLowerCase()] ? `--${FIELD_FLAGS[field.toLowerCase()]}` : whole));
const PUBLISH_REQUIRED = ['tenant', 'room', 'type', 'payload'] as const;

interface Target {
  region: string;
  websocketUrl: string;
  speechUrl: string;
  clientId: string;
  eventBusName: string;
  cognito: CognitoIdentityProviderClient;
  events: EventBridgeClient;
  passwordOf(email: string): string | undefined;
  /** The local system's users (it lists them); a deployed stack's are not known here. */
  users?: LocalConfig['users'];
  /** The local system as its description says now (a restarted one rewrites it). */
  reload?: () => Target;
}

type Values = Record<string, string | boolean | undefined>;

/** A file named by a flag, read; a missing one is an error that names the flag. */
function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`--${flag} ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, { cause: err });
  }
}

function target(values: Values): Target {
  const local = { accessKeyId: 'local', secretAccessKey: 'local' };
  const envPassword = () => process.env.GATEHOUSE_PASSWORD;
  if (typeof values.outputs === 'string') {
    const file = values.outputs;
    let outputs: Record<string, Record<string, string | undefined>>;
    try {
      outputs = JSON.parse(readFlagFile('outputs', file).toString('utf8')) as typeof outputs;
    } catch (err) {
      throw err instanceof SyntaxError ? new Error(`--outputs ${file} is not JSON (expected the file \`npx cdk deploy --outputs-file\` writes)`) : err;
    }
    const name = typeof values.stack === 'string' ? values.stack : 'Gatehouse';
    const stack = outputs[name];
    if (!stack) throw new Error(`No stack "${name}" in --outputs ${file} (it has: ${Object.keys(outputs).join(', ') || 'none'}); choose one with --stack`);
    const output = (key: string) => {
      const value = stack[key];
      if (!value) throw new Error(`Stack "${name}" in --outputs ${file} has no ${key} output: deploy the current stack and write the file again`);
      return value;
    };
    return {
      region: output('Region'),
      websocketUrl: output('WebSocketUrl'),
      speechUrl: output('SpeechUrl'),
      clientId: output('UserPoolClientId'),
      eventBusName: output('EventBusName'),
      cognito: new CognitoIdentityProviderClient({ region: output('Region') }),
      events: new EventBridgeClient({ region: output('Region') }),
      passwordOf: envPassword,
    };
  }
  const explicit = typeof values.config === 'string' ? values.config : undefined;
  let config: LocalConfig;
  try {
    config = readLocalConfig(explicit);
  } catch (err) {
    throw err instanceof SyntaxError ? new Error(`${findLocalConfig(explicit)} is not JSON: run \`npm start\` again to rewrite it, or pass --config <file>`) : err;
  }
  return {
    region: config.region,
    websocketUrl: config.websocketUrl,
    speechUrl: config.speechUrl,
    clientId: config.clientId,
    eventBusName: config.eventBusName,
    cognito: new CognitoIdentityProviderClient({ region: config.region, endpoint: config.cognitoEndpoint, credentials: local }),
    events: new EventBridgeClient({ region: config.region, endpoint: config.eventsEndpoint, credentials: local }),
    passwordOf: (email) => config.users.find((u) => u.email === email)?.password ?? envPassword(),
    users: config.users,
    reload: () => target(values),
  };
}

function credentials(command: Command, values: Values, t: Target): { user: string; password: string } {
  const user = values.user;
  if (typeof user !== 'string') throw new Error(`--user <email> is required (npx gatehouse ${command} --help)`);
  const password = typeof values.password === 'string' ? values.password : t.passwordOf(user);
  if (!password) throw new Error(`No password for --user ${user}: pass --password <pw> (or set GATEHOUSE_PASSWORD)`);
  return { user, password };
}

/** A failed sign-in (or a connection that could not get its token) as a sentence about the flags. */
function signInError(err: unknown, user: string): Error {
  if (isRefusedByCognito(err)) return new Error(`Cognito refused the sign-in of --user ${user}: ${(err as Error).message}`);
  if ((err as { name?: string }).name === 'ResourceNotFoundException') {
    return new Error(`Cognito does not know this target's app client (${(err as Error).message}): is the --config or --outputs file current?`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

async function signIn(t: Target, user: string, password: string) {
  try {
    return await signInWithPassword(t.cognito, t.clientId, user, password);
  } catch (err) {
    throw signInError(err, user);
  }
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

// --- token -------------------------------------------------------------------------------------------------------

async function token(values: Values): Promise<void> {
  const t = target(values);
  const { user, password } = credentials('token', values, t);
  const tokens = await signIn(t, user, password);
  process.stdout.write(`${tokens.accessToken}\n`);
}

// --- publish -----------------------------------------------------------------------------------------------------

async function publish(values: Values): Promise<void> {
  for (const flag of PUBLISH_REQUIRED) {
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
  if (!parsed.ok) throw new Error(`Not publishable: ${asFlags(parsed.error)}`);
  const t = target(values);
  const { tenantId, room, type } = parsed.request;
  // A warning, not a refusal: a tenant may have no users yet, and its rooms keep the message for when it has.
  if (t.users && !t.users.some((u) => u.tenants.includes(tenantId))) {
    const tenants = [...new Set(t.users.flatMap((u) => u.tenants))].sort().join(', ');
    process.stderr.write(`gatehouse: warning: no user of the local system is in tenant "${tenantId}" (its tenants: ${tenants}); publishing anyway\n`);
  }
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
  process.stdout.write(`published ${type} to ${tenantId}/${room} (event ${entry.EventId})\n`);
}

// --- connect -----------------------------------------------------------------------------------------------------

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

const TRANSPORTS: readonly Transport[] = ['header', 'subprotocol'];

/**
 * The session's credentials for the client: a token provider that remembers the last token (for the hints below)
 * and whether Cognito refused the password, which is what `stillSignedIn` tells the client (a reconnect that cannot
 * get a token because Cognito is down is retried; one whose password is refused is the end). A local system
 * restarted under a running session has a new app client (unless `npm start --state` kept the old): when Cognito no
 * longer knows this one, the provider follows the description the new system wrote.
 */
function sessionCredentials(t: Target, user: string, password: string) {
  let current = t;
  let provide = sessionTokenProvider(t.cognito, t.clientId, user, password);
  const state: { token?: string; refused?: Error } = {};
  const follow = async (err: unknown): Promise<string> => {
    const fresh = (err as { name?: string }).name === 'ResourceNotFoundException' ? current.reload?.() : undefined;
    if (!fresh || fresh.clientId === current.clientId) throw err;
    current = fresh;
    provide = sessionTokenProvider(fresh.cognito, fresh.clientId, user, password);
    return provide();
  };
  return {
    state,
    token: async () => {
      try {
        state.token = await provide().catch(follow);
        state.refused = undefined;
        return state.token;
      } catch (err) {
        state.refused = isRefusedByCognito(err) ? (err as Error) : undefined;
        throw err;
      }
    },
    stillSignedIn: async () => state.refused === undefined,
  };
}

/**
 * Why a refused handshake was refused, as far as the token tells: the tenants its groups name (the server chooses
 * among them with ?tenant=, see common/token.ts resolveTenant). A hint only: the server's reason is in its log.
 */
function tenantHint(user: string, token: string | undefined, requested: string | undefined): string | undefined {
  if (!token) return undefined;
  const tenants = tenantsOfToken(token);
  const choose = tenants.map((id) => `--tenant ${id}`).join(' or ');
  if (tenants.length === 0) return `${user} is in no tenant (no ${GROUP_DEFAULTS.tenantGroupPrefix}<id> group): an administrator has to add them to one`;
  if (requested === undefined && tenants.length > 1) return `${user} is in ${tenants.length} tenants: choose one with ${choose}`;
  if (requested !== undefined && !tenants.includes(requested)) {
    return `${user} is not in tenant "${requested}": use ${choose}${tenants.length === 1 ? ', or leave --tenant out' : ''}`;
  }
  return undefined;
}

function connectError(err: unknown, url: string, user: string, token: string | undefined, tenant: string | undefined): Error {
  if (!(err instanceof GatehouseError) || err.code !== 'handshake') return signInError(err, user);
  if (err.status === undefined) return new Error(`Cannot connect to ${url}: ${err.message}`);
  const hint = err.status === 403 ? tenantHint(user, token, tenant) : undefined;
  return new Error(`The server refused the connection (HTTP ${err.status})${hint ? `: ${hint}` : ': the sign-in may have been revoked (the server log says why)'}`);
}

/** Why the session is over when the client stops for good, as a sentence; undefined while it goes on. */
function sessionEnd(event: ClientEvents['state'], user: string, everywhere: boolean, refused: Error | undefined): string | undefined {
  if (event.state === 'signed_out' && event.reason === 'signed_out') {
    return `Signed out${everywhere ? ' everywhere' : ''} by the server (a sign-out elsewhere, or the sign-in was revoked): connect again to sign in`;
  }
  if (event.state === 'signed_out') {
    return refused
      ? `The sign-in is over: Cognito refused the sign-in of --user ${user} (${refused.message})`
      : `The sign-in is over: the server refused a fresh token for --user ${user} (revoked, or no longer in the tenant)`;
  }
  if (event.state === 'closed' && event.reason === 'closed_by_server') return 'The server closed the connection and asked the client not to come back';
  return undefined;
}

/** Prints what happens in the rooms: messages, changes, presence and typing as differences. */
function printEvents(client: GatehouseClient, say: (line: string) => void): { forget(room: string): void } {
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
  return {
    forget(room) {
      present.delete(room);
      typing.delete(room);
    },
  };
}

/** One typed line of a session: a /command, or a message for the current room. Returns false for /quit. */
async function runLine(
  text: string,
  session: { client: GatehouseClient; room?: string; say: (line: string) => void; join(room: string): Promise<void>; forget(room: string): void },
): Promise<boolean> {
  const { client, say } = session;
  const [command, arg] = text.split(/\s+/, 2);
  if (command === '/quit') return false;
  if (command === '/join' && arg) {
    await session.join(arg);
    session.room = arg;
  } else if (command === '/leave' && arg) {
    await client.leave(arg);
    session.forget(arg);
    say(`* left ${arg}`);
    if (session.room === arg) session.room = undefined;
  } else if (command === '/room' && arg) {
    session.room = arg;
    say(`* sending to ${arg}`);
  } else if (command === '/who') {
    if (!session.room) say('! join a room first: /join <room>');
    else say(`* in ${session.room}: ${people(await client.refreshPresence(session.room), client.identity?.userId)}`);
  } else if (command === '/edit' || command === '/delete') {
    const match = command === '/edit' ? /^\/edit\s+#?(\d+)\s+(.+)$/.exec(text) : /^\/delete\s+#?(\d+)$/.exec(text);
    if (!match) say(command === '/edit' ? '! usage: /edit <seq> <text>' : '! usage: /delete <seq>');
    else if (!session.room) say('! join a room first: /join <room>');
    else {
      const seq = Number(match[1]);
      // The change prints when it comes back as an event, like everyone else's.
      try {
        if (command === '/edit') await client.edit(session.room, seq, { text: match[2].trim() });
        else await client.delete(session.room, seq);
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
  } else if (text && session.room) {
    await client.send(session.room, { text });
  } else if (text) {
    say('! join a room first: /join <room>');
  }
  return true;
}

/** The flags of `connect`, checked before signing in: the room name by the server's own rule. */
function connectFlags(values: Values): { transport: Transport; room?: string; tenant?: string } {
  const transport = values.transport ?? 'header';
  if (!TRANSPORTS.includes(transport as Transport)) throw new Error(`--transport must be ${TRANSPORTS.join(' or ')}, not "${String(transport)}"`);
  const room = typeof values.room === 'string' ? values.room : undefined;
  const joinable = room === undefined ? undefined : parseClientMessage(JSON.stringify({ action: 'join', room }));
  if (joinable && !joinable.ok) throw new Error(asFlags(joinable.error.message));
  return { transport: transport as Transport, room, ...(typeof values.tenant === 'string' ? { tenant: values.tenant } : {}) };
}

/**
 * The client stops for good when the sign-in is over (signed out elsewhere, revoked, its password refused) or the
 * server says not to come back; a session waiting for input would then wait forever. This notices, says why, and
 * aborts `signal` (the input's); states after `quit()` are the session's own ending.
 */
function watchForEnd(client: GatehouseClient, user: string, refused: () => Error | undefined, say: (line: string) => void) {
  const stop = new AbortController();
  let reason: string | undefined;
  let quitting = false;
  let everywhere = false;
  client.on('event', (e) => {
    if (e.type === 'signed_out') everywhere = e.everywhere;
  });
  client.on('state', (event) => {
    say(`* ${event.state}${event.retryInMs === undefined ? '' : ` (retry in ${event.retryInMs} ms)`}`);
    const why = quitting || reason ? undefined : sessionEnd(event, user, everywhere, refused());
    if (why) {
      reason = why;
      stop.abort();
    }
  });
  return {
    signal: stop.signal,
    reason: () => reason,
    quit: () => (quitting = true),
  };
}

async function connect(values: Values): Promise<void> {
  const { transport, room, tenant } = connectFlags(values);
  const t = target(values);
  const { user, password } = credentials('connect', values, t);
  const url = tenant === undefined ? t.websocketUrl : `${t.websocketUrl}?tenant=${encodeURIComponent(tenant)}`;
  const credential = sessionCredentials(t, user, password);
  const client: GatehouseClient = createNodeClient({ url, token: credential.token, stillSignedIn: credential.stillSignedIn, transport });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const end = watchForEnd(client, user, () => credential.state.refused, say);
  const rooms = printEvents(client, say);

  try {
    await client.connect();
  } catch (err) {
    throw connectError(err, t.websocketUrl, user, credential.state.token, tenant);
  }
  const me = await client.whoami();
  say(`* signed in as ${me.name} <${user}> (user ${me.userId}, tenant ${me.tenantId}, connection ${me.connectionId})`);
  const session = {
    client,
    room,
    say,
    forget: rooms.forget,
    async join(name: string) {
      await client.join(name);
      say(`* joined ${name} (here: ${people(client.presenceOf(name), client.identity?.userId)})`);
    },
  };
  if (room) await session.join(room);

  const input = readline.createInterface({ input: process.stdin, terminal: false, signal: end.signal });
  // A session that ended before the interface existed skips the loop: iterating a closed interface never ends.
  if (!end.reason()) {
    for await (const line of input) {
      try {
        if (!(await runLine(line.trim(), session))) break;
      } catch (err) {
        say(`! ${(err as Error).message}`);
      }
    }
  }
  end.quit();
  input.close();
  await client.close();
  // /quit before the input ends (a terminal, a pipe still open): an open stdin would keep the process alive.
  process.stdin.destroy();
  const reason = end.reason();
  if (reason) throw new Error(reason);
}

// --- speak -------------------------------------------------------------------------------------------------------

/** The --wav file as the speech service takes it; a file that needed converting says what it was. */
function readSpeechFile(file: string, say: (line: string) => void): Uint8Array {
  const bytes = readFlagFile('wav', file);
  let input: SpeechInput;
  try {
    input = speechInput(bytes, SPEECH_INPUT_SAMPLE_RATE);
  } catch (err) {
    throw new Error(`--wav ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (input.converted) {
    const { sampleRate, channels, bitsPerSample, encoding } = input.source;
    const layout = channels === 1 ? 'mono' : channels === 2 ? 'stereo' : `${channels} channels`;
    say(`* ${file}: ${sampleRate} Hz ${layout} ${bitsPerSample}-bit ${encoding === 'float' ? 'float' : 'PCM'}, resampled to ${SPEECH_INPUT_SAMPLE_RATE} Hz mono`);
  }
  return input.data;
}

/** One turn: the recording streamed in real time, the transcripts printed; resolves with the spoken answer. */
async function talk(speech: SpeechClient, samples: Uint8Array, say: (line: string) => void): Promise<Uint8Array> {
  const audio: Uint8Array[] = [];
  let turnEnded: () => void = () => undefined;
  const turn = new Promise<void>((resolve) => (turnEnded = resolve));
  let closed: { code: number; reason: string } | undefined;
  speech.on('audio', (pcm) => audio.push(pcm));
  speech.on('event', (e) => {
    if (e.type === 'transcript' && e.final) say(`${e.role}: ${e.text}`);
    if (e.type === 'error') say(`! ${e.code}: ${e.message}`);
    if (e.type === 'turn_end') turnEnded();
  });
  speech.on('close', (c) => {
    closed = c;
    turnEnded(); // nothing more will come
  });
  const closedHow = () => (closed ? `${closed.code}${closed.reason ? ` ${closed.reason}` : ''}` : 'no answer');
  try {
    await speech.connect();
  } catch (err) {
    throw new Error(`The speech service refused the connection (${closedHow()})`, { cause: err });
  }
  speech.start();
  // Real time, in 100 ms frames, then a second of silence so the end of the utterance is heard.
  const frame = (SPEECH_INPUT_SAMPLE_RATE / 10) * 2;
  const stream = new Uint8Array(samples.length + SPEECH_INPUT_SAMPLE_RATE * 2);
  stream.set(samples);
  for (let i = 0; i < stream.length && !closed; i += frame) {
    speech.sendAudio(stream.subarray(i, i + frame));
    await new Promise((r) => setTimeout(r, 100));
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([turn, new Promise((r) => (timer = setTimeout(r, 15_000)))]);
  clearTimeout(timer);
  if (closed && closed.code !== 1000) throw new Error(`The speech service closed the connection (${closedHow()})`);
  if (!closed) {
    speech.stop();
    speech.close();
  }
  const answer = new Uint8Array(audio.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of audio) {
    answer.set(a, offset);
    offset += a.length;
  }
  return answer;
}

async function speak(values: Values): Promise<void> {
  if (typeof values.wav !== 'string') throw new Error('--wav <file> is required (npx gatehouse speak --help)');
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const samples = readSpeechFile(values.wav, say);
  const t = target(values);
  const { user, password } = credentials('speak', values, t);
  const { accessToken } = await signIn(t, user, password);
  const answer = await talk(new SpeechClient({ url: t.speechUrl, token: accessToken, socket: nodeSocket('subprotocol') }), samples, say);
  say(`* received ${(answer.length / 2 / SPEECH_OUTPUT_SAMPLE_RATE).toFixed(2)} s of audio`);
  if (typeof values.out === 'string') {
    try {
      writeFileSync(values.out, writeWav({ sampleRate: SPEECH_OUTPUT_SAMPLE_RATE, channels: 1, data: answer }));
    } catch (err) {
      throw new Error(`--out ${values.out}: ${(err as Error).message}`, { cause: err });
    }
    say(`* saved ${values.out}`);
  }
}

// --- main --------------------------------------------------------------------------------------------------------

const OPTIONS = {
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
} as const;

async function main(): Promise<void> {
  // Node 20 is supported here; the SDK's notice about its future Node 22 requirement would only add noise.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const [command, ...rest] = process.argv.slice(2);
  if (!isCommand(command)) {
    if (command && command !== 'help' && command !== '--help' && command !== '-h') {
      process.stderr.write(`gatehouse: unknown command "${command}" (the commands: ${Object.keys(COMMAND_HELP).join(', ')})\n\n${USAGE}`);
      process.exitCode = 2;
    } else {
      process.stdout.write(USAGE);
    }
    return;
  }
  let values: Values;
  try {
    ({ values } = parseArgs({ args: rest, options: OPTIONS }));
  } catch (err) {
    // parseArgs names the flag ("Unknown option '--usr'"); add where the right ones are listed.
    throw new Error(`${(err as Error).message} (npx gatehouse ${command} --help)`, { cause: err });
  }
  if (values.help) {
    process.stdout.write(commandUsage(command));
    return;
  }
  const run: Record<Command, (values: Values) => Promise<void>> = { token, publish, connect, speak };
  return run[command](values);
}

main().catch((err: Error) => {
  process.stderr.write(`gatehouse: ${err.message}\n`);
  process.exit(1);
});
